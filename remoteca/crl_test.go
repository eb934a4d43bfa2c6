package remoteca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// TestCRLKeptAndRemade: the CRL lists revoked certificates, is kept while
// fresh (same bytes), remade with a higher number after a revocation or
// half its validity, and checks against the CA.
func TestCRLKeptAndRemade(t *testing.T) {
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			f := newDBFixture(t)
			d, _ := openDB(t, kind)
			ctx, now := context.Background(), time.Now()
			fp := FingerprintHex(f.ca.Cert.Raw)
			toks := f.tokens(t, d, TokenOptions{Uses: 2}, 1)
			alice, _, err := f.enroll(d, toks[0], Request{Profile: pki.ClientProfile, CN: "alice"}, nil, now)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = f.enroll(d, toks[0], Request{Profile: pki.ClientProfile, CN: "bob"}, nil, now)
			if err != nil {
				t.Fatal(err)
			}
			get := func(at time.Time) *x509.RevocationList {
				t.Helper()
				der, err := d.CRL(ctx, fp, at, f.ca.CRL)
				if err != nil {
					t.Fatal(err)
				}
				crl, err := pki.CheckCRL(der, []*x509.Certificate{f.ca.Cert}, at)
				if err != nil {
					t.Fatal(err)
				}
				return crl
			}
			first := get(now)
			if len(first.RevokedCertificateEntries) != 0 || first.Number.Int64() != 1 {
				t.Fatalf("first CRL: number %v, %d entries", first.Number, len(first.RevokedCertificateEntries))
			}
			if again := get(now.Add(time.Minute)); string(again.Raw) != string(first.Raw) {
				t.Error("a fresh CRL was signed again")
			}
			if _, err := d.RevokeName(ctx, "alice", "lost laptop", now.Add(2*time.Minute)); err != nil {
				t.Fatal(err)
			}
			second := get(now.Add(3 * time.Minute))
			if second.Number.Int64() != 2 || len(second.RevokedCertificateEntries) != 1 || second.RevokedCertificateEntries[0].SerialNumber.Cmp(alice.SerialNumber) != 0 {
				t.Fatalf("after revoking alice: number %v, entries %v", second.Number, second.RevokedCertificateEntries)
			}
			if later := get(now.Add(3*time.Minute + CRLValidity/2 + time.Second)); later.Number.Int64() != 3 {
				t.Errorf("a CRL past half its validity was not remade (number %v)", later.Number)
			}
		})
	}
}

// TestCRLServed: GET /crl answers the DER CRL without a client certificate.
func TestCRLServed(t *testing.T) {
	f := newFixture(t)
	pool := x509.NewCertPool()
	pool.AddCert(f.ca.Cert)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := hc.Get(f.url + CRLPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	der, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET /crl: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if _, err := pki.CheckCRL(der, []*x509.Certificate{f.ca.Cert}, time.Now()); err != nil {
		t.Fatal(err)
	}
}
