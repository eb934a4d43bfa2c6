package pki

import (
	"crypto/x509"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCRL(t *testing.T) {
	key, _ := GenerateKey(ECDSAP256)
	ca, err := NewCA(key, CAOptions{CommonName: "crl CA"})
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := GenerateKey(ECDSAP256)
	bad, err := ca.Issue(IssueRequest{Profile: ClientProfile, CommonName: "mallory", PublicKey: leafKey.Public(), Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	good, err := ca.Issue(IssueRequest{Profile: ClientProfile, CommonName: "alice", PublicKey: leafKey.Public(), Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, err := ca.CRL([]Revoked{{Serial: bad.SerialNumber, At: now.Add(-time.Minute)}}, big.NewInt(7), now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	crl, err := CheckCRL(der, []*x509.Certificate{ca.Cert}, now)
	if err != nil {
		t.Fatal(err)
	}
	if crl.Number.Int64() != 7 || len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(bad.SerialNumber) != 0 {
		t.Errorf("CRL number %v, entries %v", crl.Number, crl.RevokedCertificateEntries)
	}
	otherKey, _ := GenerateKey(ECDSAP256)
	other, err := NewCA(otherKey, CAOptions{CommonName: "other CA"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckCRL(der, []*x509.Certificate{other.Cert}, now); err == nil {
		t.Error("a CRL of another CA passed")
	}
	if _, err := CheckCRL(der, []*x509.Certificate{ca.Cert}, now.Add(2*time.Hour)); err == nil {
		t.Error("an expired CRL passed")
	}
	if _, err := ca.CRL(nil, big.NewInt(0), now, now.Add(time.Hour)); err == nil {
		t.Error("CRL number 0 accepted")
	}

	// openssl agrees: the revoked certificate fails, the other passes.
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed (apt-get install openssl): the openssl check is skipped")
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile, crlFile := write("ca.pem", EncodeCertificate(ca.Cert)), write("crl.pem", EncodeCRL(der))
	for _, c := range []struct {
		cert    *x509.Certificate
		revoked bool
	}{{bad, true}, {good, false}} {
		out, err := exec.Command("openssl", "verify", "-crl_check", "-CAfile", caFile, "-CRLfile", crlFile, write("leaf.pem", EncodeCertificate(c.cert))).CombinedOutput()
		if c.revoked != (err != nil) || c.revoked != strings.Contains(string(out), "certificate revoked") {
			t.Errorf("openssl verify of %s (revoked %v): %v\n%s", c.cert.Subject.CommonName, c.revoked, err, out)
		}
	}
	if out, err := exec.Command("openssl", "crl", "-in", crlFile, "-CAfile", caFile, "-noout").CombinedOutput(); err != nil || !strings.Contains(string(out), "verify OK") {
		t.Errorf("openssl crl: %v\n%s", err, out)
	}
}
