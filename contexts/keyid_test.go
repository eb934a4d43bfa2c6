package contexts

import (
	"crypto/x509"
	"strings"
	"testing"

	"github.com/docker-tls/docker-tls/pki"
)

func TestKeyIDs(t *testing.T) {
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert := &x509.Certificate{PublicKey: key.Public()}
	id := KeyID("prod", cert)
	if !strings.HasPrefix(id, "ctx-prod-") || len(id) != len("ctx-prod-")+12 {
		t.Fatalf("id %q", id)
	}
	tests := []struct {
		id, name string
		want     bool
	}{
		{id, "prod", true},
		{"ctx-prod-x-0123456789ab", "prod", false}, // context "prod-x"
		{"ctx-prod-0123456789ab", "prod-x", false},
		{"ctx-prod-abcdef012345-0123456789ab", "prod", false},
		{"ca-prod-0123456789ab", "prod", false},
	}
	for _, tt := range tests {
		if got := IsKeyOf(tt.id, tt.name); got != tt.want {
			t.Errorf("IsKeyOf(%q, %q) = %v", tt.id, tt.name, got)
		}
	}
}
