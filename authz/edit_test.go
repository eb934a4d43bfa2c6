package authz

import (
	"reflect"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/policy"
)

func TestEditApply(t *testing.T) {
	cfg := &Config{Policy: policy.Policy{Grants: []policy.Grant{{Subject: "user:bob", Role: policy.Viewer}}}, CRLURL: "https://ca/crl", CRLInterval: "1m0s"}
	notes := Edit{
		Grants:  []policy.Grant{{Subject: "group:ops", Role: policy.Operator}, {Subject: "user:bob", Role: policy.Admin}},
		Revokes: []policy.Subject{"user:carol"},
		Local:   "deny",
	}.Apply(cfg)
	want := []policy.Grant{{Subject: "user:bob", Role: policy.Admin}, {Subject: "group:ops", Role: policy.Operator}}
	if !reflect.DeepEqual(cfg.Policy.Grants, want) || !cfg.LocalDeny || !reflect.DeepEqual(notes, []string{"user:carol had no grant"}) {
		t.Errorf("grants %v, local deny %v, notes %v", cfg.Policy.Grants, cfg.LocalDeny, notes)
	}
	if cfg.CRLURL != "https://ca/crl" || cfg.CRLInterval != "1m0s" {
		t.Errorf("an edit without CRL flags changed them: %q %q", cfg.CRLURL, cfg.CRLInterval)
	}
	Edit{CRLInterval: 5 * time.Second, Local: "allow"}.Apply(cfg)
	if cfg.CRLInterval != "5s" || cfg.LocalDeny {
		t.Errorf("interval %q, local deny %v", cfg.CRLInterval, cfg.LocalDeny)
	}
	Edit{CRLURL: "none"}.Apply(cfg)
	if cfg.CRLURL != "" || cfg.CRLInterval != "" {
		t.Errorf("none left %q %q", cfg.CRLURL, cfg.CRLInterval)
	}
}
