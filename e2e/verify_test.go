package e2e

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/internal/loopback"
	"github.com/docker-tls/docker-tls/pki"
)

// mintLeaf signs a certificate with a CA whose files are on disk, at any
// point in time, for cases the CLI rightly refuses to make (expired ones).
func mintLeaf(t *testing.T, caCert, caKey, dir string, req pki.IssueRequest) (certPath, keyPath string) {
	t.Helper()
	certPEM, _ := os.ReadFile(caCert)
	keyPEM, _ := os.ReadFile(caKey)
	c, err := pki.ParseCertificate(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	k, err := pki.ParsePrivateKey(keyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(c, k)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	req.PublicKey = key.Public()
	leaf, err := ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := pki.EncodePrivateKey(key, nil)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write(t, certPath, string(pki.EncodeCertificate(leaf)))
	write(t, keyPath, string(kp))
	return certPath, keyPath
}

type verifyReport struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Checks []struct {
		ID      string `json:"id"`
		Status  string `json:"status"`
		Message string `json:"message"`
		Fix     string `json:"fix"`
	} `json:"checks"`
	Engine *struct {
		Version    string `json:"version"`
		APIVersion string `json:"apiVersion"`
		OS         string `json:"os"`
	} `json:"engine"`
}

// verifyJSON runs docker tls verify ARGS --format json and returns the reports.
func verifyJSON(t *testing.T, e *Env, args ...string) ([]verifyReport, Result) {
	t.Helper()
	r := e.TLS(append(append([]string{"verify"}, args...), "--format", "json", "--timeout", "2s")...)
	var reports []verifyReport
	if err := json.Unmarshal([]byte(r.Stdout), &reports); err != nil {
		t.Fatalf("verify JSON: %v\n%s", err, r)
	}
	return reports, r
}

// expectCheck asserts that check id has status and its message contains want.
func expectCheck(t *testing.T, rep verifyReport, id, status, want string) {
	t.Helper()
	for _, c := range rep.Checks {
		if c.ID == id {
			if c.Status != status || !strings.Contains(c.Message, want) {
				t.Fatalf("check %s = %s %q, want %s containing %q", id, c.Status, c.Message, status, want)
			}
			if status == "fail" && c.Message == "" {
				t.Fatalf("check %s fails without a message", id)
			}
			return
		}
	}
	t.Fatalf("no check %s in %+v", id, rep.Checks)
}

// TestVerifyAgainstRealDockerd: good material passes every check against a
// real dockerd, and each classic mistake gets its own precise message and
// exit status 1.
func TestVerifyAgainstRealDockerd(t *testing.T) {
	need(t, "docker")
	needRoot(t)
	need(t, "dockerd")
	e := NewEnv(t)
	fx := e.Path("fx")
	// A CA that started three years ago, so backdated certificates can be minted.
	caCert, caKey := writeCA(t, filepath.Join(fx, "main"), time.Now().Add(-3*365*24*time.Hour), 10*365*24*time.Hour)
	e.MustTLS("ca", "import", "main", "--cert", caCert, "--key", caKey)
	e.MustTLS("ca", "init", "other")

	srv := e.Path("srv")
	e.MustTLS("server", "issue", "localhost", "--ca", "main", "--out", srv)
	good := StartDockerd(t, ServerTLS{CA: caCert, Cert: filepath.Join(srv, "server-cert.pem"), Key: filepath.Join(srv, "server-key.pem")})
	goodHost := strings.Replace(good.Host, "127.0.0.1", "localhost", 1)
	e.MustTLS("context", "create", "good", "--host", goodHost, "--ca", "main", "--issue")
	cli := e.Path("client")
	e.MustTLS("client", "issue", "carol", "--ca", "main", "--out", cli)

	t.Run("good material passes every check", func(t *testing.T) {
		reps, r := verifyJSON(t, e, "good")
		requireOK(t, r)
		rep := reps[0]
		if rep.Status != "ok" || rep.Engine == nil || rep.Engine.Version == "" || rep.Engine.OS != "linux" {
			t.Fatalf("report: %+v", rep)
		}
		for _, id := range []string{"endpoint", "ca", "client-cert", "client-key", "dns", "tcp", "server-chain", "server-name", "server-eku", "server-expiry", "client-auth", "client-accepted", "api"} {
			expectCheck(t, rep, id, "ok", "")
		}
		// The table form, and the current context by default.
		requireOK(t, e.Docker("context", "use", "good"))
		table := e.MustTLS("verify")
		if !strings.Contains(table.Stdout, "OK: 0 failed, 0 warnings") {
			t.Fatalf("table:\n%s", table.Stdout)
		}
		requireOK(t, e.Docker("context", "use", "default"))
	})

	hostFlags := func(host string, cert, key string) []string {
		return []string{"--host", host, "--ca", caCert, "--cert", cert, "--key", key}
	}
	cases := []struct {
		name   string
		args   func(t *testing.T) []string
		id     string
		status string
		want   string
	}{
		{"server cert without the target in its SANs", func(t *testing.T) []string {
			return hostFlags(good.Host, filepath.Join(cli, "cert.pem"), filepath.Join(cli, "key.pem"))
		}, "server-name", "fail", "valid for DNS:localhost, not for 127.0.0.1"},
		{"CN-only server cert", func(t *testing.T) []string {
			need(t, "openssl")
			dir := e.Path("cn-only")
			_ = os.MkdirAll(dir, 0o700)
			openssl(t, dir, "genrsa", "-out", "key.pem", "2048")
			openssl(t, dir, "req", "-new", "-key", "key.pem", "-subj", "/CN=localhost", "-out", "req.csr")
			openssl(t, dir, "x509", "-req", "-in", "req.csr", "-CA", caCert, "-CAkey", caKey, "-CAcreateserial", "-days", "30", "-out", "cert.pem")
			d := StartDockerd(t, ServerTLS{CA: caCert, Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")})
			return hostFlags(strings.Replace(d.Host, "127.0.0.1", "localhost", 1), filepath.Join(cli, "cert.pem"), filepath.Join(cli, "key.pem"))
		}, "server-name", "fail", `no subject alternative names, only CN="localhost"`},
		{"expired server cert", func(t *testing.T) []string {
			sans, _, _ := pki.ParseSANs([]string{"localhost"})
			c, k := mintLeaf(t, caCert, caKey, e.Path("expired-srv"), pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans, Now: time.Now().Add(-400 * 24 * time.Hour), Lifetime: 30 * 24 * time.Hour})
			d := StartDockerd(t, ServerTLS{CA: caCert, Cert: c, Key: k})
			return hostFlags(strings.Replace(d.Host, "127.0.0.1", "localhost", 1), filepath.Join(cli, "cert.pem"), filepath.Join(cli, "key.pem"))
		}, "server-expiry", "fail", "expired on"},
		{"server cert from another CA", func(t *testing.T) []string {
			dir := e.Path("other-srv")
			e.MustTLS("server", "issue", "localhost", "--ca", "other", "--out", dir)
			d := StartDockerd(t, ServerTLS{CA: caCert, Cert: filepath.Join(dir, "server-cert.pem"), Key: filepath.Join(dir, "server-key.pem")})
			return hostFlags(strings.Replace(d.Host, "127.0.0.1", "localhost", 1), filepath.Join(cli, "cert.pem"), filepath.Join(cli, "key.pem"))
		}, "server-chain", "fail", `issued by "docker-tls CA other", not by the context's CA "fixture CA"`},
		{"client cert from another CA", func(t *testing.T) []string {
			dir := e.Path("mallory")
			e.MustTLS("client", "issue", "mallory", "--ca", "other", "--out", dir)
			return hostFlags(goodHost, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		}, "client-accepted", "fail", `the daemon does not trust your client certificate: it is issued by "docker-tls CA other", the daemon trusts "fixture CA"`},
		{"a context made entirely from another CA", func(t *testing.T) []string {
			dir := e.Path("wrong-ca-client")
			e.MustTLS("client", "issue", "eve", "--ca", "other", "--out", dir)
			return []string{"--host", goodHost, "--ca", filepath.Join(dir, "ca.pem"), "--cert", filepath.Join(dir, "cert.pem"), "--key", filepath.Join(dir, "key.pem")}
		}, "client-accepted", "fail", `the daemon does not trust your client certificate: it is issued by "docker-tls CA other", the daemon trusts "fixture CA"`},
		{"expired client cert", func(t *testing.T) []string {
			c, k := mintLeaf(t, caCert, caKey, e.Path("expired-cli"), pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "old", Now: time.Now().Add(-200 * 24 * time.Hour), Lifetime: 90 * 24 * time.Hour})
			return hostFlags(goodHost, c, k)
		}, "client-cert", "fail", "expired on"},
		{"client cert with only serverAuth", func(t *testing.T) []string {
			dir := e.Path("srv-as-client")
			e.MustTLS("server", "issue", "client.example.com", "--ca", "main", "--out", dir)
			return hostFlags(goodHost, filepath.Join(dir, "server-cert.pem"), filepath.Join(dir, "server-key.pem"))
		}, "client-cert", "fail", "lacks extended key usage clientAuth"},
		{"key not matching the cert", func(t *testing.T) []string {
			dir := e.Path("other-key")
			e.MustTLS("client", "issue", "dave", "--ca", "main", "--out", dir)
			return hostFlags(goodHost, filepath.Join(cli, "cert.pem"), filepath.Join(dir, "key.pem"))
		}, "client-key", "fail", "does not match"},
		{"dockerd --tls without --tlsverify", func(t *testing.T) []string {
			d := StartDockerd(t, ServerTLS{CA: caCert, Cert: filepath.Join(srv, "server-cert.pem"), Key: filepath.Join(srv, "server-key.pem"), NoVerify: true})
			return hostFlags(strings.Replace(d.Host, "127.0.0.1", "localhost", 1), filepath.Join(cli, "cert.pem"), filepath.Join(cli, "key.pem"))
		}, "client-auth", "warn", "--tls without --tlsverify"},
		{"plain HTTP dockerd", func(t *testing.T) []string {
			d := StartDockerd(t, ServerTLS{Plain: true})
			return hostFlags(d.Host, filepath.Join(cli, "cert.pem"), filepath.Join(cli, "key.pem"))
		}, "tls", "fail", "exposed without TLS"},
		{"a port that speaks something else", func(t *testing.T) []string {
			return hostFlags(loopback.Serve(t, func(c net.Conn) { _, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2p1\r\n")) }), filepath.Join(cli, "cert.pem"), filepath.Join(cli, "key.pem"))
		}, "tls", "fail", `sent "SSH-2.0-OpenSSH_9.2p1"`},
		{"a port that never answers", func(t *testing.T) []string {
			return hostFlags(loopback.Serve(t, func(c net.Conn) {}), filepath.Join(cli, "cert.pem"), filepath.Join(cli, "key.pem"))
		}, "tls", "fail", "no TLS answer within 2s"},
		{"a refused port", func(t *testing.T) []string {
			port, _ := freePort()
			return hostFlags("tcp://127.0.0.1:"+itoa(port), filepath.Join(cli, "cert.pem"), filepath.Join(cli, "key.pem"))
		}, "tcp", "fail", "refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args(t)
			start := time.Now()
			reps, r := verifyJSON(t, e, args...)
			if time.Since(start) > 20*time.Second {
				t.Fatalf("verify took %s", time.Since(start))
			}
			expectCheck(t, reps[0], tc.id, tc.status, tc.want)
			if tc.status == "fail" {
				requireFail(t, r, "verify: 1 of 1 failed")
			} else {
				requireOK(t, r)
				strict := e.TLS(append(append([]string{"verify"}, args...), "--strict", "--quiet")...)
				if strict.Code != 1 || strict.Stdout != "" {
					t.Fatalf("--strict on a warning: %s", strict)
				}
			}
			// The table names the fix next to the failure.
			table := e.TLS(append([]string{"verify", "--timeout", "2s"}, args...)...)
			if !strings.Contains(table.Stdout, tc.want) {
				t.Fatalf("table does not explain it:\n%s", table.Stdout)
			}
		})
	}

	t.Run("--all summarises every context concurrently", func(t *testing.T) {
		e.MustTLS("context", "create", "refused", "--host", "tcp://127.0.0.1:1", "--ca", "main", "--issue")
		r := e.TLS("verify", "--all", "--timeout", "2s")
		if r.Code != 1 || !strings.Contains(r.Stdout, "good") || !strings.Contains(r.Stdout, "refused") || !strings.Contains(r.Stdout, "1 ok, 0 with warnings, 1 failed") {
			t.Fatalf("verify --all: %s", r)
		}
		// One at a time gives the same verdicts in the same order.
		if seq := e.TLS("verify", "--all", "--timeout", "2s", "--parallel", "1"); seq.Code != 1 || stripTimes(seq.Stdout) != stripTimes(r.Stdout) {
			t.Fatalf("verify --all --parallel 1:\n%s\nvs\n%s", seq.Stdout, r.Stdout)
		}
		requireFail(t, e.TLS("verify", "--all", "--parallel", "0"), "--parallel")
		off := e.TLS("verify", "--all", "--offline")
		requireOK(t, off)
	})

	t.Run("a locked context still verifies, with a warning", func(t *testing.T) {
		e.MustTLS("lock", "good")
		reps, r := verifyJSON(t, e, "good")
		requireOK(t, r)
		expectCheck(t, reps[0], "client-key", "warn", "locked")
		expectCheck(t, reps[0], "api", "ok", "")
		e.MustTLS("unlock", "good")
	})
}

// stripTimes blanks the durations verify prints, which differ run to run.
func stripTimes(s string) string {
	return regexp.MustCompile(`\d+(\.\d+)?(ms|µs|s)\b`).ReplaceAllString(s, "T")
}
