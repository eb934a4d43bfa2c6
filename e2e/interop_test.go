package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// openssl runs openssl in dir and fails the test on error.
func openssl(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// articleMaterial makes a CA, a server and a client certificate exactly as
// the source articles do (RSA 4096, -aes256 CA key, extfile with SANs and
// EKUs), minus their typos. It returns the directory and the passphrase file.
func articleMaterial(t *testing.T, dir string) (passFile string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	passFile = filepath.Join(dir, "pass.txt")
	if err := os.WriteFile(passFile, []byte("Article-CA-Passphrase-42\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pass := "file:" + passFile
	openssl(t, dir, "genrsa", "-aes256", "-passout", pass, "-out", "ca-key.pem", "4096")
	openssl(t, dir, "req", "-new", "-x509", "-days", "365", "-key", "ca-key.pem", "-passin", pass, "-sha256",
		"-subj", "/C=DE/ST=Berlin/L=Berlin/O=Example/CN=Article CA", "-out", "ca.pem")
	openssl(t, dir, "genrsa", "-out", "server-key.pem", "4096")
	openssl(t, dir, "req", "-subj", "/CN=localhost", "-sha256", "-new", "-key", "server-key.pem", "-out", "server.csr")
	write(t, filepath.Join(dir, "extfile.cnf"), "subjectAltName = DNS:localhost,IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")
	openssl(t, dir, "x509", "-req", "-days", "365", "-sha256", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
		"-passin", pass, "-CAcreateserial", "-out", "server-cert.pem", "-extfile", "extfile.cnf")
	openssl(t, dir, "genrsa", "-out", "key.pem", "4096")
	openssl(t, dir, "req", "-subj", "/CN=client", "-new", "-key", "key.pem", "-out", "client.csr")
	write(t, filepath.Join(dir, "extfile-client.cnf"), "extendedKeyUsage = clientAuth\n")
	openssl(t, dir, "x509", "-req", "-days", "365", "-sha256", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
		"-passin", pass, "-CAcreateserial", "-out", "cert.pem", "-extfile", "extfile-client.cnf")
	return passFile
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestOpenSSLInterop: what the articles' openssl commands make imports and
// works with what docker-tls makes, and what docker-tls makes passes
// openssl's own checks.
func TestOpenSSLInterop(t *testing.T) {
	need(t, "docker", "openssl")
	e := NewEnv(t)
	art := e.Path("article")
	passFile := articleMaterial(t, art)
	e.Secrets = append(e.Secrets, "Article-CA-Passphrase-42")

	imp := e.MustTLS("--keystore", "file", "ca", "import", "article", "--cert", filepath.Join(art, "ca.pem"), "--key", filepath.Join(art, "ca-key.pem"), "--passphrase-file", passFile)
	fp := openssl(t, art, "x509", "-in", "ca.pem", "-noout", "-fingerprint", "-sha256")
	fp = strings.TrimSpace(fp[strings.Index(fp, "=")+1:])
	if !strings.Contains(imp.Stdout, fp) {
		t.Fatalf("import does not show the fingerprint openssl computes (%s):\n%s", fp, imp.Stdout)
	}
	// The imported key stays encrypted at rest.
	keys, _ := filepath.Glob(filepath.Join(e.ConfigDir, "tls", "keys", "ca-article-*.pem"))
	if len(keys) != 1 {
		t.Fatalf("imported key files: %v", keys)
	}
	if data, _ := os.ReadFile(keys[0]); !strings.HasPrefix(string(data), "-----BEGIN ENCRYPTED PRIVATE KEY-----") {
		t.Fatal("imported passphrase-protected key was stored unencrypted")
	}
	// openssl reads our encrypted key back with the same passphrase.
	openssl(t, art, "pkey", "-in", keys[0], "-passin", "file:"+passFile, "-noout")

	ours := e.Path("ours-server")
	e.MustTLS("server", "issue", "localhost", "127.0.0.1", "--ca", "article", "--days", "300", "--key-type", "rsa-2048", "--passphrase-file", passFile, "--out", ours)
	e.Setenv("DOCKER_TLS_CA_PASSPHRASE", "Article-CA-Passphrase-42")
	oursClient := e.Path("ours-client")
	e.MustTLS("client", "issue", "bob", "--ca", "article", "--out", oursClient)
	// The article's CA lives 365 days: our 825-day default must be refused, not cut short.
	requireFail(t, e.TLS("server", "issue", "localhost", "--ca", "article", "--out", e.Path("too-long")), "outlive its CA", "at most 36")
	if _, err := os.Stat(e.Path("too-long")); err == nil {
		t.Fatal("a refused issue created its output directory")
	}

	t.Run("openssl verifies what we issue", func(t *testing.T) {
		for _, c := range []struct{ file, purpose string }{
			{filepath.Join(ours, "server-cert.pem"), "sslserver"},
			{filepath.Join(oursClient, "cert.pem"), "sslclient"},
		} {
			out := openssl(t, art, "verify", "-CAfile", filepath.Join(art, "ca.pem"), "-purpose", c.purpose, c.file)
			if !strings.Contains(out, ": OK") {
				t.Fatalf("openssl verify %s: %s", c.file, out)
			}
		}
		// And rejects the wrong purpose.
		cmd := exec.Command("openssl", "verify", "-CAfile", filepath.Join(art, "ca.pem"), "-purpose", "sslclient", filepath.Join(ours, "server-cert.pem"))
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("openssl accepted a server certificate as client: %s", out)
		}
	})

	t.Run("ca init --export: the articles' openssl commands sign with the exported CA", func(t *testing.T) {
		out := e.Path("exported-ca")
		pw := e.Path("export-pass")
		write(t, pw, "Export-Passphrase-77\n")
		e.Secrets = append(e.Secrets, "Export-Passphrase-77")
		e.MustTLS("ca", "init", "exported", "--export", out, "--passphrase-file", pw, "--org", "Example Org")
		if fi, err := os.Stat(filepath.Join(out, "ca-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("ca-key.pem: %v %v", fi, err)
		}
		if key, _ := os.ReadFile(filepath.Join(out, "ca-key.pem")); !strings.HasPrefix(string(key), "-----BEGIN ENCRYPTED PRIVATE KEY-----") {
			t.Fatalf("the exported CA key is not encrypted:\n%.40s", key)
		}
		if subj := openssl(t, out, "x509", "-in", "ca.pem", "-noout", "-subject"); !strings.Contains(subj, "O = Example Org") {
			t.Fatalf("--org: %s", subj)
		}
		wrong := e.Path("export-wrong")
		write(t, wrong, "not-it\n")
		if b, err := exec.Command("openssl", "pkey", "-in", filepath.Join(out, "ca-key.pem"), "-passin", "file:"+wrong, "-noout").CombinedOutput(); err == nil {
			t.Fatalf("openssl opened the exported key with a wrong passphrase:\n%s", b)
		}
		// The articles' way of signing a server certificate, with our CA.
		openssl(t, out, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server-key.pem")
		openssl(t, out, "req", "-new", "-key", "server-key.pem", "-subj", "/CN=localhost", "-out", "server.csr")
		write(t, filepath.Join(out, "extfile.cnf"), "subjectAltName = DNS:localhost,IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")
		openssl(t, out, "x509", "-req", "-days", "365", "-sha256", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
			"-passin", "file:"+pw, "-CAcreateserial", "-out", "server-cert.pem", "-extfile", "extfile.cnf")
		if v := openssl(t, out, "verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "server-cert.pem"); !strings.Contains(v, ": OK") {
			t.Fatalf("openssl verify: %s", v)
		}
		// The export never replaces files already there.
		requireFail(t, e.TLS("ca", "init", "exported2", "--export", out, "--passphrase-file", pw), "--force")
	})

	t.Run("extensions as openssl shows them", func(t *testing.T) {
		e.MustTLS("ca", "init", "fresh")
		caText := openssl(t, art, "x509", "-noout", "-text", "-in", filepath.Join(e.ConfigDir, "tls", "ca", "fresh", "ca.pem"))
		for _, want := range []string{
			"X509v3 Basic Constraints: critical", "CA:TRUE, pathlen:0",
			"X509v3 Key Usage: critical", "Certificate Sign, CRL Sign",
			"X509v3 Subject Key Identifier", "ecdsa-with-SHA256", "NIST CURVE: P-256",
		} {
			if !strings.Contains(caText, want) {
				t.Errorf("CA certificate lacks %q:\n%s", want, caText)
			}
		}
		srvText := openssl(t, art, "x509", "-noout", "-text", "-in", filepath.Join(ours, "server-cert.pem"))
		for _, want := range []string{
			"CA:FALSE", "TLS Web Server Authentication", "Digital Signature, Key Encipherment",
			"DNS:localhost, IP Address:127.0.0.1", "X509v3 Authority Key Identifier", "X509v3 Subject Key Identifier",
			"Subject: CN = localhost", "sha256WithRSAEncryption",
		} {
			if !strings.Contains(srvText, want) {
				t.Errorf("server certificate lacks %q:\n%s", want, srvText)
			}
		}
		cliText := openssl(t, art, "x509", "-noout", "-text", "-in", filepath.Join(oursClient, "cert.pem"))
		for _, want := range []string{"CA:FALSE", "TLS Web Client Authentication", "Subject: CN = bob", "Digital Signature", "NIST CURVE: P-256"} {
			if !strings.Contains(cliText, want) {
				t.Errorf("client certificate lacks %q:\n%s", want, cliText)
			}
		}
		if strings.Contains(cliText, "Key Encipherment") {
			t.Error("an ECDSA client certificate must not carry keyEncipherment")
		}
		serial := openssl(t, art, "x509", "-noout", "-serial", "-in", filepath.Join(oursClient, "cert.pem"))
		if hex := strings.TrimPrefix(strings.TrimSpace(serial), "serial="); len(hex) < 24 || len(hex) > 32 {
			t.Errorf("serial %q is not a ~128-bit number", hex)
		}
	})

	t.Run("curl and openssl read our keys", func(t *testing.T) {
		openssl(t, art, "pkey", "-in", filepath.Join(oursClient, "key.pem"), "-noout")
		mod1 := openssl(t, art, "pkey", "-in", filepath.Join(oursClient, "key.pem"), "-pubout")
		mod2 := openssl(t, art, "x509", "-in", filepath.Join(oursClient, "cert.pem"), "-noout", "-pubkey")
		if mod1 != mod2 {
			t.Fatal("client key does not match its certificate according to openssl")
		}
	})

	t.Run("mixed in one dockerd connection", func(t *testing.T) {
		needRoot(t)
		need(t, "dockerd")
		// dockerd with the article's server cert, docker CLI with ours.
		d := StartDockerd(t, ServerDir(art))
		requireOK(t, e.DockerVia(d.Host, DirTLS(oursClient), "version", "--format", "{{.Server.Version}}"))
		// A context straight from the article's client files (--ca-file: no local CA involved).
		e.MustTLS("context", "create", "fromfiles", "--host", d.Host, "--ca-file", filepath.Join(art, "ca.pem"),
			"--cert", filepath.Join(art, "cert.pem"), "--key", filepath.Join(art, "key.pem"))
		requireOK(t, e.Docker("--context", "fromfiles", "version", "--format", "{{.Server.Version}}"))
		if r := e.MustTLS("verify", "fromfiles"); !strings.Contains(r.Stdout, "ok    client-accepted") {
			t.Fatalf("verify of a context made from the article's files:\n%s", r.Stdout)
		}
		// dockerd with our server cert, docker CLI with the article's client cert.
		d2 := StartDockerd(t, ServerDir(ours))
		requireOK(t, e.DockerVia(d2.Host, ClientTLS{CA: filepath.Join(art, "ca.pem"), Cert: filepath.Join(art, "cert.pem"), Key: filepath.Join(art, "key.pem")}, "version", "--format", "{{.Server.Version}}"))
	})
}
