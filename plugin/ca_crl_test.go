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
