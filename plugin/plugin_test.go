package plugin

import (
	"crypto/x509"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

func TestContextKeyIDs(t *testing.T) {
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert := &x509.Certificate{PublicKey: key.Public()}
	id := contextKeyID("prod", cert)
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
		if got := isContextKeyOf(tt.id, tt.name); got != tt.want {
			t.Errorf("isContextKeyOf(%q, %q) = %v", tt.id, tt.name, got)
		}
	}
}

func TestShellQuoting(t *testing.T) {
	tricky := `/tmp/it's "odd" $HOME \ dir`
	if _, err := exec.LookPath("sh"); err == nil {
		out, err := exec.Command("sh", "-c", "printf %s "+shQuote(tricky)).Output()
		if err != nil || string(out) != tricky {
			t.Fatalf("sh round trip: %q, %v", out, err)
		}
	}
	if got := fishQuote(`a'b\c`); got != `'a\'b\\c'` {
		t.Errorf("fishQuote = %s", got)
	}
}

func TestCommonName(t *testing.T) {
	for in, want := range map[string]string{
		"CN=alice":         "alice",
		"CN=a,O=Example":   "CN=a,O=Example",
		"O=Example,CN=bob": "O=Example,CN=bob",
		"":                 "",
	} {
		if got := commonName(in); got != want {
			t.Errorf("commonName(%q) = %q", in, got)
		}
	}
}

func TestLifetime(t *testing.T) {
	if d, err := lifetime(0); err != nil || d != 0 {
		t.Fatal(d, err)
	}
	if d, err := lifetime(30); err != nil || d != 30*24*time.Hour {
		t.Fatal(d, err)
	}
	for _, bad := range []int{-1, 100*365 + 1} {
		if _, err := lifetime(bad); err == nil {
			t.Errorf("lifetime(%d) accepted", bad)
		}
	}
}
