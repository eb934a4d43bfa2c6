package e2e

import (
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-tls/docker-tls/pki"
)

// TestExpiryWarningsAndHook: with the current context's certificate five
// days from expiry, every docker tls command says so once on stderr, ls
// flags it, and the docker CLI hook suggests the renew command after
// `docker context use` (real docker CLI, under a pty).
func TestExpiryWarningsAndHook(t *testing.T) {
	need(t, "docker")
	e := NewEnv(t)
	e.MustTLS("ca", "init")
	e.MustTLS("context", "create", "soon", "--host", "tcp://127.0.0.1:2376", "--issue", "--days", "5")
	e.MustTLS("context", "create", "fresh", "--host", "tcp://127.0.0.1:2376", "--issue")

	requireOK(t, e.Docker("context", "use", "soon"))
	r := e.MustTLS("ca", "ls")
	if strings.Count(r.Stderr, "warning:") != 1 || !strings.Contains(r.Stderr, `current context "soon" expires in 4 days`) || !strings.Contains(r.Stderr, "docker tls renew soon") {
		t.Fatalf("expiry warning: %s", r)
	}
	if ls := e.MustTLS("ls", "--format", "{{.Name}} {{.Expires}}"); !strings.Contains(ls.Stdout, "renew soon") {
		t.Fatalf("ls does not flag it:\n%s", ls.Stdout)
	}
	requireOK(t, e.Docker("context", "use", "fresh"))
	if r := e.MustTLS("ca", "ls"); strings.Contains(r.Stderr, "warning") {
		t.Fatalf("warning for a fresh certificate: %s", r)
	}

	t.Run("docker CLI hook after context use", func(t *testing.T) {
		need(t, "script")
		cfgPath := filepath.Join(e.ConfigDir, "config.json")
		data, _ := os.ReadFile(cfgPath)
		ks := ""
		if strings.Contains(string(data), `"keystore": "file"`) {
			ks = `"keystore": "file", `
		}
		write(t, cfgPath, `{"features": {"hooks": "true"}, "plugins": {"tls": {`+ks+`"hooks": "context use"}}}`)
		run := func(ctx string) string {
			cmd := exec.Command("script", "-qec", "docker context use "+ctx, "/dev/null")
			cmd.Env = append(e.environ(), "DOCKER_CLI_HOOKS=1", "TERM=xterm")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("docker context use %s under a pty: %v\n%s", ctx, err, out)
			}
			return string(out)
		}
		if out := run("soon"); !strings.Contains(out, "docker tls renew soon") {
			t.Fatalf("no hook message after context use soon:\n%s", out)
		}
		if out := run("fresh"); strings.Contains(out, "docker tls renew") {
			t.Fatalf("hook message for a fresh context:\n%s", out)
		}
	})
}

// TestServerRenew re-issues a server certificate directory in place and a
// real dockerd restarted with it serves the new certificate; the engine is
// asked about live-restore.
func TestServerRenew(t *testing.T) {
	need(t, "docker")
	needRoot(t)
	need(t, "dockerd")
	e := NewEnv(t)
	e.MustTLS("ca", "init")
	srv := e.Path("srv")
	e.MustTLS("server", "issue", "localhost", "127.0.0.1", "--out", srv, "--days", "30")
	old := readCert(t, filepath.Join(srv, "server-cert.pem"))
	oldKey, _ := os.ReadFile(filepath.Join(srv, "server-key.pem"))
	d := StartDockerd(t, ServerDir(srv))
	e.MustTLS("context", "create", "eng", "--host", d.Host, "--issue")

	r := e.MustTLS("server", "renew", srv, "--context", "eng")
	if !strings.Contains(r.Stdout, "restart dockerd") || !strings.Contains(r.Stdout, "live-restore is OFF") {
		t.Fatalf("server renew: %s", r)
	}
	renewed := readCert(t, filepath.Join(srv, "server-cert.pem"))
	newKey, _ := os.ReadFile(filepath.Join(srv, "server-key.pem"))
	if renewed.SerialNumber.Cmp(old.SerialNumber) == 0 || strings.Join(renewed.DNSNames, ",") != "localhost" || len(renewed.IPAddresses) != 1 || string(newKey) != string(oldKey) {
		t.Fatal("server renew did not keep names and key with a new serial")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(srv, "*.new")); len(leftovers) != 0 {
		t.Fatalf("left behind: %v", leftovers)
	}
	// A dockerd started with the renewed files serves them.
	d2 := StartDockerd(t, ServerDir(srv))
	e.MustTLS("context", "create", "eng2", "--host", d2.Host, "--issue")
	requireOK(t, e.Docker("--context", "eng2", "version", "--format", "{{.Server.Version}}"))

	e.MustTLS("server", "renew", srv, "--san", "engine.example.com,127.0.0.1", "--rekey")
	changed := readCert(t, filepath.Join(srv, "server-cert.pem"))
	if strings.Join(changed.DNSNames, ",") != "engine.example.com" {
		t.Fatalf("--san not applied: %v", changed.DNSNames)
	}
	if k, _ := os.ReadFile(filepath.Join(srv, "server-key.pem")); string(k) == string(oldKey) {
		t.Fatal("--rekey kept the key")
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.ParseCertificate(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestShellCompletion: cobra's completion works under `docker tls` (the
// docker CLI's plugin completion protocol) and standalone, with context
// and CA names and flag values completed.
func TestShellCompletion(t *testing.T) {
	need(t, "docker")
	e := NewEnv(t)
	e.MustTLS("ca", "init", "teamca")
	e.MustTLS("context", "create", "prod", "--host", "tcp://127.0.0.1:2376", "--ca", "teamca", "--issue")
	for _, tc := range []struct {
		r    Result
		want []string
	}{
		{e.Docker("__complete", "tls", ""), []string{"verify", "renew", "context"}},
		{e.Docker("__complete", "tls", "verify", ""), []string{"prod"}},
		{e.Docker("__complete", "tls", "ca", "inspect", ""), []string{"teamca"}},
		{e.Docker("__complete", "tls", "ca", "init", "--key-type", ""), []string{"ecdsa-p256", "ed25519"}},
		{e.Standalone("__complete", "renew", ""), []string{"prod"}},
		{e.Standalone("completion", "bash"), []string{"bash completion"}},
	} {
		requireOK(t, tc.r)
		for _, w := range tc.want {
			if !strings.Contains(tc.r.Stdout, w) {
				t.Errorf("%s: no %q in\n%s", strings.Join(tc.r.Args, " "), w, tc.r.Stdout)
			}
		}
	}
}
