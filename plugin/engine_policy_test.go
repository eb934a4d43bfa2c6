package plugin

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/authz"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/policy"
)

// TestPolicyWords: the short phrases policy set, show and its refusals
// are made of.
func TestPolicyWords(t *testing.T) {
	grants := mustPolicy(t, "group:admins=admin", "user:bob=viewer")
	for _, tt := range []struct {
		cfg  authz.Config
		want string
	}{
		{authz.Config{}, "no grants, local calls allowed"},
		{authz.Config{Policy: grants, LocalDeny: true}, "group:admins=admin user:bob=viewer, local calls refused"},
		{authz.Config{Policy: grants, CRLURL: "https://ca:8443/crl", CRLInterval: "10m"},
			"group:admins=admin user:bob=viewer, local calls allowed, revocations pulled from https://ca:8443/crl every 10m0s"},
	} {
		if got := policySummary(&tt.cfg); got != tt.want {
			t.Errorf("policySummary(%+v) = %q, want %q", tt.cfg, got, tt.want)
		}
	}

	for _, tt := range []struct {
		facts engine.PolicyFacts
		want  string
	}{
		{engine.PolicyFacts{}, "off"},
		{engine.PolicyFacts{Enabled: true, Config: []byte("{}")}, "enforced"},
		{engine.PolicyFacts{Enabled: true}, "enforced, but the policy file is missing: every call is refused"},
		{engine.PolicyFacts{Units: true}, "installed, not consulted by dockerd: run docker tls engine policy set again"},
		{engine.PolicyFacts{Config: []byte("{}")}, "installed, not consulted by dockerd: run docker tls engine policy set again"},
	} {
		if got := policyState(&tt.facts); got != tt.want {
			t.Errorf("policyState(%+v) = %q, want %q", tt.facts, got, tt.want)
		}
	}

	ids := []policy.Identity{{User: "admin-1", Groups: []string{"admins", "ops"}}, {User: "laptop"}}
	if got, want := identityList(ids), "user:admin-1 (groups admins, ops); user:laptop"; got != want {
		t.Errorf("identityList = %q, want %q", got, want)
	}
	if got := identityList(nil); got != "it holds none" {
		t.Errorf("identityList(nil) = %q", got)
	}
	if got := firstSubject(ids); got != "user:admin-1" {
		t.Errorf("firstSubject = %q", got)
	}
	if got := firstSubject(nil); got != "user:NAME" {
		t.Errorf("firstSubject(nil) = %q", got)
	}

	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	held := []authz.CRLInfo{
		{CA: "team", Number: "4", ThisUpdate: now.Add(-90 * time.Second), NextUpdate: now.Add(time.Hour), Revoked: 2},
		{CA: "old", Number: "9", ThisUpdate: now.Add(-48 * time.Hour), NextUpdate: now.Add(-time.Hour), Revoked: 0},
	}
	for _, tt := range []struct {
		held       []authz.CRLInfo
		url, every string
		want       string
	}{
		{nil, "", "", "no revocation list held; pushed by docker tls ca revoke"},
		{nil, "https://ca/crl", "5m0s", "no revocation list held; pulled from https://ca/crl every 5m0s"},
		{held, "", "", "list 4 of team, 2 revoked, issued 1m30s ago; list 9 of old, 0 revoked, issued 48h0m0s ago (past its next update); pushed by docker tls ca revoke"},
	} {
		if got := crlSummary(tt.held, tt.url, tt.every, now); got != tt.want {
			t.Errorf("crlSummary = %q, want %q", got, tt.want)
		}
	}
}

// TestPolicyShowGolden: policy show's three outputs for one engine.
func TestPolicyShowGolden(t *testing.T) {
	c := newTestCLI(t)
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	v := policyView{
		Engine: "build-1", State: "enforced", LocalDeny: true, Plugin: "docker-tls-authz.service active",
		Grants: mustPolicy(t, "group:admins=admin", "group:ops=operator", "*=viewer").Grants,
		CRLURL: "https://ca.example:8443/crl", CRLEvery: "5m0s",
		CRLs: []authz.CRLInfo{{CA: "team", Number: "3", ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour), Revoked: 1}},
	}
	for _, tt := range []struct{ format, golden string }{
		{"", "policy-show"},
		{"json", "policy-show-json"},
		{"{{.Engine}} {{.State}} {{len .Grants}} grants", "policy-show-template"},
	} {
		var out bytes.Buffer
		if err := printPolicy(&out, v, tt.format, now); err != nil {
			t.Fatalf("printPolicy %q: %v", tt.format, err)
		}
		c.golden(tt.golden, out.String())
	}
	var out bytes.Buffer
	if err := printPolicy(&out, v, "{{.Nope}}", now); err == nil {
		t.Errorf("a template naming no field printed %q", out.String())
	}
}

// TestEngineAuditOutput: the audit trail as a table whose columns stay put
// while records are followed, as JSON lines, and through a template; and
// engine audit's refusals, before any connection.
func TestEngineAuditOutput(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	records := []authz.Decision{
		{Time: at, Allow: true, User: "bob", Method: "GET", Path: "/v1.41/containers/json", Role: "viewer", Needs: "viewer", Rule: "user:bob=viewer"},
		{Time: at.Add(time.Second), Allow: false, Method: "POST", Path: "/v1.41/containers/create", Needs: "operator", Rule: "local calls refused"},
	}
	t.Setenv("TZ", "UTC")
	for _, tt := range []struct {
		format string
		want   []string
	}{
		{"", []string{
			"TIME                 USER              DECISION  ROLE      METHOD  PATH                                      RULE",
			"2026-12-06 12:00:00  bob               allowed   viewer    GET     /v1.41/containers/json                    user:bob=viewer",
			"2026-12-06 12:00:01  (local)           refused             POST    /v1.41/containers/create                  local calls refused",
		}},
		{"json", []string{`{"line":0}`, `{"line":1}`}},
		{"{{.User}} {{.Allow}} {{.Needs}}", []string{"bob true viewer", " false operator"}},
	} {
		var out bytes.Buffer
		write, err := auditWriter(&out, tt.format)
		if err != nil {
			t.Fatalf("auditWriter(%q): %v", tt.format, err)
		}
		for i, d := range records {
			if err := write(d, []byte(`{"line":`+string(rune('0'+i))+`}`)); err != nil {
				t.Fatal(err)
			}
		}
		if got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("format %q:\n%s\nwant:\n%s", tt.format, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}

	c := newTestCLI(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "table {{.User}}"}, `--format "table {{.User}}": give table, json or a template without table`},
		{[]string{"--format", "{{.User"}, "--format: "},
		{[]string{"--since", "yesterday"}, "--since "},
		{[]string{"--user", "bad\tname"}, "--user: the common name"},
		{nil, `no engine "build-1": docker tls engine ls lists them`},
	} {
		c.fails(tt.want, append([]string{"engine", "audit", "build-1"}, tt.args...)...)
	}
}
