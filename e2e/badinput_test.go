package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// snapshot records every file and directory under root with its mode and
// content hash, to prove a failed command changed nothing.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := strings.TrimPrefix(p, root) + " " + fi.Mode().String()
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			line += " " + hex.EncodeToString(sum[:8])
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// writeCA writes a CA made by pki with the given validity window, for cases
// openssl 3.0 cannot make (it cannot backdate).
func writeCA(t *testing.T, dir string, now time.Time, life time.Duration) (certPath, keyPath string) {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(key, pki.CAOptions{CommonName: "fixture CA", Now: now, Lifetime: life})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodePrivateKey(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	write(t, certPath, string(pki.EncodeCertificate(ca.Cert)))
	write(t, keyPath, string(keyPEM))
	return certPath, keyPath
}

// TestBadInputChangesNothing: every kind of bad input gets a clear error on
// stderr, a non-zero exit, and leaves DOCKER_CONFIG and the output
// directories exactly as they were.
func TestBadInputChangesNothing(t *testing.T) {
	need(t, "docker")
	e := NewEnv(t)
	e.MustTLS("ca", "init")
	e.MustTLS("ca", "init", "short", "--days", "10")
	existing := e.Path("existing")
	e.MustTLS("client", "issue", "alice", "--out", existing)

	fx := e.Path("fixtures")
	expiredCert, expiredKey := writeCA(t, filepath.Join(fx, "expired"), time.Now().Add(-48*time.Hour), 24*time.Hour)
	futureCert, futureKey := writeCA(t, filepath.Join(fx, "future"), time.Now().Add(48*time.Hour), 24*time.Hour)
	goodCert, goodKey := writeCA(t, filepath.Join(fx, "good"), time.Now(), 24*time.Hour)
	_, otherKey := writeCA(t, filepath.Join(fx, "other"), time.Now(), 24*time.Hour)
	garbage := filepath.Join(fx, "garbage.pem")
	write(t, garbage, "this is not a certificate\n")
	broken := filepath.Join(fx, "broken.pem")
	write(t, broken, "-----BEGIN CERTIFICATE-----\nnot base64 !!!\n-----END CERTIFICATE-----\n")
	passFile := filepath.Join(fx, "pass")
	write(t, passFile, "the-right-passphrase\n")
	wrongPass := filepath.Join(fx, "wrong-pass")
	write(t, wrongPass, "not-the-passphrase\n")
	goodKeyData, _ := os.ReadFile(goodKey)
	goodSigner, err := pki.ParsePrivateKey(goodKeyData, nil)
	if err != nil {
		t.Fatal(err)
	}
	encKeyPEM, _ := pki.EncodePrivateKey(goodSigner, []byte("the-right-passphrase"))
	encKey := filepath.Join(fx, "enc-key.pem")
	write(t, encKey, string(encKeyPEM))
	e.Secrets = append(e.Secrets, "the-right-passphrase", "not-the-passphrase")

	var leafCert, leafKey string
	{
		e.MustTLS("client", "issue", "leaf", "--out", filepath.Join(fx, "leaf"))
		leafCert, leafKey = filepath.Join(fx, "leaf", "cert.pem"), filepath.Join(fx, "leaf", "key.pem")
	}

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"garbage certificate", []string{"ca", "import", "x", "--cert", garbage, "--key", goodKey}, []string{"not a certificate"}},
		{"malformed PEM", []string{"ca", "import", "x", "--cert", broken, "--key", goodKey}, []string{"malformed"}},
		{"key as certificate", []string{"ca", "import", "x", "--cert", goodKey, "--key", goodKey}, []string{"private key, not a certificate"}},
		{"certificate as key", []string{"ca", "import", "x", "--cert", goodCert, "--key", goodCert}, []string{"certificate, not a private key"}},
		{"key not matching", []string{"ca", "import", "x", "--cert", goodCert, "--key", otherKey}, []string{"does not match"}},
		{"leaf as CA", []string{"ca", "import", "x", "--cert", leafCert, "--key", leafKey}, []string{"not a CA certificate"}},
		{"expired CA", []string{"ca", "import", "x", "--cert", expiredCert, "--key", expiredKey}, []string{"expired"}},
		{"not yet valid CA", []string{"ca", "import", "x", "--cert", futureCert, "--key", futureKey}, []string{"not valid until"}},
		{"wrong passphrase", []string{"ca", "import", "x", "--cert", goodCert, "--key", encKey, "--passphrase-file", wrongPass}, []string{"wrong passphrase"}},
		{"no passphrase, no terminal", []string{"ca", "import", "x", "--cert", goodCert, "--key", encKey}, []string{"encrypted", "--passphrase-file"}},
		{"missing file", []string{"ca", "import", "x", "--cert", filepath.Join(fx, "nope.pem"), "--key", goodKey}, []string{"no such file"}},
		{"bad CA name", []string{"ca", "import", "../x", "--cert", goodCert, "--key", goodKey}, []string{"may contain only"}},
		{"existing CA", []string{"ca", "init"}, []string{"already exists", "--force"}},
		{"import over existing CA", []string{"ca", "import", "default", "--cert", goodCert, "--key", goodKey}, []string{"already exists", "--force"}},
		{"SAN with =", []string{"server", "issue", "IP=192.168.0.1", "--out", e.Path("s1")}, []string{"IP:192.168.0.1"}},
		{"SAN with ;", []string{"server", "issue", "DNS:sub.example.com;IP=192.168.0.1", "--out", e.Path("s1")}, []string{"separate names with commas"}},
		{"empty DNS:", []string{"server", "issue", "DNS:", "--out", e.Path("s1")}, []string{"no value after DNS:"}},
		{"bad IP", []string{"server", "issue", "IP:1.2.3", "--out", e.Path("s1")}, []string{"not a valid IP"}},
		{"999.1.1.1", []string{"server", "issue", "999.1.1.1", "--out", e.Path("s1")}, []string{"not a valid IP"}},
		{"unknown CA", []string{"server", "issue", "localhost", "--ca", "missing", "--out", e.Path("s1")}, []string{"no such CA", "ca init missing"}},
		{"unknown key type", []string{"server", "issue", "localhost", "--key-type", "dsa", "--out", e.Path("s1")}, []string{"unknown key type"}},
		{"port out of range", []string{"server", "issue", "localhost", "--port", "70000", "--out", e.Path("s1")}, []string{"not a TCP port"}},
		{"relative install dir", []string{"server", "issue", "localhost", "--install-dir", "tls", "--out", e.Path("s1")}, []string{"must be an absolute path"}},
		{"days out of range", []string{"client", "issue", "bob", "--days", "-1", "--out", e.Path("s1")}, []string{"--days"}},
		{"outlives CA", []string{"client", "issue", "bob", "--ca", "short", "--days", "30", "--out", e.Path("s1")}, []string{"outlive its CA"}},
		{"existing files", []string{"client", "issue", "alice", "--out", existing}, []string{"already exists", "--force"}},
		{"no out", []string{"client", "issue", "bob"}, []string{"out"}},
		{"client name with slash", []string{"client", "issue", "a/b", "--out", e.Path("s1")}, []string{"plain name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, e.Dir)
			r := e.TLS(tt.args...)
			requireFail(t, r, tt.want...)
			if strings.Contains(r.Stderr, "panic") || strings.Contains(r.Stderr, "goroutine") {
				t.Fatalf("crashed: %s", r)
			}
			if after := snapshot(t, e.Dir); after != before {
				t.Fatalf("a failed command changed files:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}

	t.Run("--force overwrites", func(t *testing.T) {
		before, _ := os.ReadFile(filepath.Join(existing, "cert.pem"))
		e.MustTLS("client", "issue", "alice", "--out", existing, "--force")
		after, _ := os.ReadFile(filepath.Join(existing, "cert.pem"))
		if string(before) == string(after) {
			t.Fatal("--force did not replace the certificate")
		}
		fi, _ := os.Stat(filepath.Join(existing, "key.pem"))
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("key mode after overwrite: %v", fi.Mode())
		}
	})

	t.Run("0.0.0.0 warns but works", func(t *testing.T) {
		r := e.MustTLS("server", "issue", "0.0.0.0", "localhost", "--out", e.Path("wild"))
		if !strings.Contains(r.Stderr, "not an address a client connects to") {
			t.Fatalf("no warning: %s", r)
		}
	})

	t.Run("v1 CA from openssl x509 -signkey is refused", func(t *testing.T) {
		need(t, "openssl")
		dir := e.Path("v1")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		openssl(t, dir, "genrsa", "-out", "ca-key.pem", "2048")
		openssl(t, dir, "req", "-new", "-key", "ca-key.pem", "-subj", "/CN=v1", "-out", "ca.csr")
		openssl(t, dir, "x509", "-req", "-in", "ca.csr", "-out", "ca.pem", "-signkey", "ca-key.pem", "-days", "365")
		before := snapshot(t, e.Dir)
		requireFail(t, e.TLS("ca", "import", "v1", "--cert", filepath.Join(dir, "ca.pem"), "--key", filepath.Join(dir, "ca-key.pem")), "v1", "openssl req -x509")
		if snapshot(t, e.Dir) != before {
			t.Fatal("refused import changed files")
		}
	})
}
