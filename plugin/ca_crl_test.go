package plugin

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

func TestCACRL(t *testing.T) {
	c := newTestCLI(t)
	c.must("ca", "init")
	c.fails(`--format "xml": use pem or der`, "ca", "crl", "default", "--format", "xml")
	c.fails("give --out FILE", "ca", "crl", "default", "--format", "der")
	c.fails("no such CA", "ca", "crl", "nope")

	out := c.must("ca", "crl", "default")
	block, _ := pem.Decode([]byte(out))
	if block == nil || block.Type != "X509 CRL" {
		t.Fatalf("ca crl printed %q", out)
	}
	path := strings.TrimSpace(c.must("ca", "ls", "--format", "{{.Path}}"))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := pki.ParseCertificate(data)
	if err != nil {
		t.Fatal(err)
	}
	var crl *x509.RevocationList
	crl, err = pki.CheckCRL(block.Bytes, []*x509.Certificate{caCert}, time.Now())
	if err != nil || crl.Number.Int64() != 1 {
		t.Fatalf("the printed CRL: %v (number %v)", err, crl)
	}

	file := filepath.Join(t.TempDir(), "crl.der")
	c.must("ca", "crl", "default", "--format", "der", "--out", file)
	if !strings.Contains(c.Stderr, "number 1, 0 revoked") {
		t.Errorf("stderr: %q", c.Stderr)
	}
	der, err := os.ReadFile(file)
	if err != nil || string(der) != string(block.Bytes) {
		t.Errorf("the DER file is not the same CRL (fresh CRLs are kept): %v", err)
	}
	c.fails("use --force to overwrite", "ca", "crl", "default", "--format", "der", "--out", file)
	c.must("ca", "crl", "default", "--format", "der", "--out", file, "--force")
}

// TestLocalIssuanceIsRecorded: every certificate a CA on this laptop
// issues is in its inventory, with where it went, so that ca revoke CN
// finds it with no service running and the CA's list names it; and a
// certificate the inventory cannot record is not issued.
func TestLocalIssuanceIsRecorded(t *testing.T) {
	c := newTestCLI(t)
	t.Setenv("DOCKER_TLS_CA_DB", "")
	c.must("ca", "init")
	c.must("context", "create", "lab", "--host", "tcp://127.0.0.1:2376", "--issue", "--client-name", "alice", "--group", "ops")
	out := t.TempDir()
	c.must("client", "issue", "ci", "--out", filepath.Join(out, "ci"))
	c.must("server", "issue", "engine.example.com", "--out", filepath.Join(out, "srv"))
	c.must("ca", "issued", "ls", "--format", "{{.CN}}|{{.Groups}}|{{.Profile}}|{{.Source}}")
	for _, want := range []string{"alice|ops|client|context lab", "ci||client|file " + filepath.Join(out, "ci"), "engine.example.com||server|file " + filepath.Join(out, "srv")} {
		if !strings.Contains(c.Stdout, want) {
			t.Errorf("ca issued ls has no %q:\n%s", want, c.Stdout)
		}
	}
	c.must("ca", "revoke", "alice")
	c.must("ca", "crl", "default", "--out", filepath.Join(out, "crl.pem"))
	data, err := os.ReadFile(filepath.Join(out, "crl.pem"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	crl, err := x509.ParseRevocationList(b.Bytes)
	if err != nil || len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("the CRL after revoking alice: %v, %d entries", err, len(crl.RevokedCertificateEntries))
	}

	// An inventory that cannot be reached: nothing is issued.
	t.Setenv("DOCKER_TLS_CA_DB", "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	c.fails("inventory could not record the certificate, so it is not issued", "context", "create", "lab2", "--host", "tcp://127.0.0.1:2377", "--issue")
	c.fails("inventory could not record the certificate, so it is not issued", "client", "issue", "ci2", "--out", filepath.Join(out, "ci2"))
	if _, err := os.Stat(filepath.Join(out, "ci2")); err == nil {
		t.Error("client issue wrote files for a certificate it could not record")
	}
}
