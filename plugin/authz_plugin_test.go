package plugin

import (
	"context"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/authz"
	"github.com/docker-tls/docker-tls/internal/pkitest"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/policy"
)

// TestAuthzPluginEngineSide drives the engine side of a policy the way
// the laptop does over SSH: the plugin's status while it serves, a pushed
// revocation list, and the audit trail read back with filters.
func TestAuthzPluginEngineSide(t *testing.T) {
	c := newTestCLI(t)
	dir := t.TempDir()
	ca := pkitest.NewCA(t, "team CA", "")
	cas := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(cas, pki.EncodeCertificate(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "policy.json")
	writeJSON(t, cfg, authz.Config{Engine: "build-1", CAs: cas, Policy: mustPolicy(t, "group:admins=admin", "user:bob=viewer")})
	sock, audit := filepath.Join(dir, "p.sock"), filepath.Join(dir, "audit.log")
	crl, lock := filepath.Join(dir, "crl.pem"), filepath.Join(dir, "crl.lock")
	files := []string{"authz-plugin", "--config", cfg, "--socket", sock, "--audit", audit, "--crl", crl, "--crl-lock", lock}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- authz.Service{Config: cfg, Socket: sock, Audit: audit, CRL: crl, CRLLock: lock, Logf: t.Logf}.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the plugin: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the plugin did not stop within 10s")
		}
	})

	var st authz.Status
	if err := json.Unmarshal([]byte(c.must(append(files, "--status", "--wait", "10s")...)), &st); err != nil {
		t.Fatalf("--status: %v: %s", err, c.Stdout)
	}
	if st.Engine != "build-1" || st.Grants != 2 || len(st.CRLs) != 0 {
		t.Errorf("--status: %+v, want engine build-1, 2 grants, no CRL", st)
	}

	// A pushed list is taken once; the same list again changes nothing.
	der, err := ca.CRL([]pki.Revoked{{Serial: big.NewInt(7), At: time.Now()}}, big.NewInt(2), time.Now(), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []bool{true, false} {
		c.stdin = string(pki.EncodeCRL(der))
		var got struct {
			Changed bool            `json:"changed"`
			CRLs    []authz.CRLInfo `json:"crls"`
		}
		if err := json.Unmarshal([]byte(c.must(append(files, "--install-crl")...)), &got); err != nil {
			t.Fatalf("--install-crl: %v: %s", err, c.Stdout)
		}
		if got.Changed != want || len(got.CRLs) != 1 {
			t.Errorf("--install-crl: changed %v with %d lists, want changed %v with 1", got.Changed, len(got.CRLs), want)
		}
	}
	st = authz.Status{}
	if err := json.Unmarshal([]byte(c.must(append(files, "--status")...)), &st); err != nil || len(st.CRLs) != 1 {
		t.Errorf("--status after the push: %+v, %v; want the list in force", st, err)
	}
	other := pkitest.NewCA(t, "other CA", "")
	der, err = other.CRL(nil, big.NewInt(9), time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c.stdin = string(pki.EncodeCRL(der))
	if err := c.run(append(files, "--install-crl")...); err == nil || !strings.Contains(err.Error(), "not signed by a trusted CA") {
		t.Errorf("a list of another CA: %v", err)
	}
	noCAs := filepath.Join(dir, "nocas.json")
	writeJSON(t, noCAs, authz.Config{Engine: "build-1", Policy: mustPolicy(t, "*=viewer")})
	c.fails("names no CAs to check revocation lists against", "authz-plugin", "--config", noCAs, "--crl", crl, "--install-crl")

	// The trail, filtered as engine audit asks for it.
	log := &authz.AuditLog{Path: audit}
	start := time.Now().UTC()
	for i, d := range []authz.Decision{
		{User: "bob", Allow: true, Method: "GET", Path: "/v1.41/containers/json", Role: "viewer", Needs: "viewer"},
		{User: "bob", Allow: false, Method: "POST", Path: "/v1.41/containers/create", Role: "viewer", Needs: "operator"},
		{User: "carol", Allow: false, Method: "GET", Path: "/v1.41/images/json", Needs: "viewer"},
	} {
		d.Time = start.Add(time.Duration(i) * time.Second)
		if err := log.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args  []string
		paths []string
	}{
		{nil, []string{"/v1.41/containers/json", "/v1.41/containers/create", "/v1.41/images/json"}},
		{[]string{"--user", "bob"}, []string{"/v1.41/containers/json", "/v1.41/containers/create"}},
		{[]string{"--denied"}, []string{"/v1.41/containers/create", "/v1.41/images/json"}},
		{[]string{"--since", start.Add(2 * time.Second).Format(time.RFC3339Nano)}, []string{"/v1.41/images/json"}},
	} {
		out := c.must(append(append(files, "--read-audit"), tt.args...)...)
		var paths []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var d authz.Decision
			if err := json.Unmarshal([]byte(line), &d); err != nil {
				t.Fatalf("--read-audit %v: %v: %q", tt.args, err, line)
			}
			paths = append(paths, d.Path)
		}
		if strings.Join(paths, " ") != strings.Join(tt.paths, " ") {
			t.Errorf("--read-audit %v: %v, want %v", tt.args, paths, tt.paths)
		}
	}
	c.fails("--since \"yesterday\": give an RFC 3339 time", "authz-plugin", "--audit", audit, "--read-audit", "--since", "yesterday")
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustPolicy(t *testing.T, grants ...string) policy.Policy {
	t.Helper()
	var p policy.Policy
	for _, s := range grants {
		g, err := policy.ParseGrant(s)
		if err != nil {
			t.Fatal(err)
		}
		p.Set(g)
	}
	return p
}
