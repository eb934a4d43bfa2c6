package pki

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

func mustCA(t testing.TB, kt KeyType, opts CAOptions) *CA {
	t.Helper()
	key, err := GenerateKey(kt)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := NewCA(key, opts)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustSANs(t testing.TB, v ...string) SANs {
	t.Helper()
	s, _, err := ParseSANs(v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewCAExtensions(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, kt := range KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			ca := mustCA(t, kt, CAOptions{CommonName: "test CA", Now: now})
			c := ca.Cert
			if !c.BasicConstraintsValid || !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero {
				t.Errorf("basic constraints: valid=%v ca=%v pathlen=%d zero=%v", c.BasicConstraintsValid, c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
			}
			if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
				t.Errorf("key usage = %v", c.KeyUsage)
			}
			if len(c.SubjectKeyId) != 20 || !bytes.Equal(c.SubjectKeyId, c.AuthorityKeyId) {
				t.Errorf("SKI %x AKI %x", c.SubjectKeyId, c.AuthorityKeyId)
			}
			if got := c.NotBefore; !got.Equal(now.Add(-Backdate)) {
				t.Errorf("NotBefore = %v", got)
			}
			if got := c.NotAfter; !got.Equal(now.Add(DefaultCALifetime)) {
				t.Errorf("NotAfter = %v", got)
			}
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %v", c.SerialNumber)
			}
			if c.Subject.CommonName != "test CA" {
				t.Errorf("CN = %q", c.Subject.CommonName)
			}
			if err := c.CheckSignatureFrom(c); err != nil {
				t.Errorf("self-signature: %v", err)
			}
			// The critical flags are not visible through x509.Certificate;
			// read the raw extensions.
			for _, ext := range c.Extensions {
				if (ext.Id.String() == "2.5.29.19" || ext.Id.String() == "2.5.29.15") && !ext.Critical {
					t.Errorf("extension %s is not critical", ext.Id)
				}
			}
			if kt == ECDSAP256 && c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
				t.Errorf("signature algorithm %v", c.SignatureAlgorithm)
			}
		})
	}
}

func TestIssueProfiles(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, ECDSAP256, CAOptions{Now: now})
	for _, kt := range KeyTypes() {
		key, err := GenerateKey(kt)
		if err != nil {
			t.Fatal(err)
		}
		t.Run("server/"+string(kt), func(t *testing.T) {
			cert, err := ca.Issue(IssueRequest{Profile: ServerProfile, PublicKey: key.Public(), SANs: mustSANs(t, "localhost", "127.0.0.1"), Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyLeaf(cert, ca.Cert, ServerProfile, now); err != nil {
				t.Fatal(err)
			}
			if err := VerifyLeaf(cert, ca.Cert, ClientProfile, now); err == nil || !strings.Contains(err.Error(), "clientAuth") {
				t.Errorf("server cert accepted as client cert: %v", err)
			}
			if cert.Subject.CommonName != "localhost" {
				t.Errorf("CN = %q", cert.Subject.CommonName)
			}
			want := x509.KeyUsageDigitalSignature
			if _, ok := key.Public().(*rsa.PublicKey); ok {
				want |= x509.KeyUsageKeyEncipherment
			}
			if cert.KeyUsage != want {
				t.Errorf("key usage %v, want %v", cert.KeyUsage, want)
			}
			if cert.IsCA || !cert.BasicConstraintsValid {
				t.Error("leaf must carry CA:FALSE")
			}
			if !bytes.Equal(cert.AuthorityKeyId, ca.Cert.SubjectKeyId) || len(cert.SubjectKeyId) != 20 {
				t.Errorf("AKI %x SKI %x", cert.AuthorityKeyId, cert.SubjectKeyId)
			}
			if got := cert.NotAfter.Sub(cert.NotBefore); got != DefaultServerLifetime+Backdate {
				t.Errorf("lifetime %v", got)
			}
			if err := cert.VerifyHostname("127.0.0.1"); err != nil {
				t.Error(err)
			}
			if err := cert.VerifyHostname("localhost"); err != nil {
				t.Error(err)
			}
		})
		t.Run("client/"+string(kt), func(t *testing.T) {
			cert, err := ca.Issue(IssueRequest{Profile: ClientProfile, PublicKey: key.Public(), CommonName: "alice", Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyLeaf(cert, ca.Cert, ClientProfile, now); err != nil {
				t.Fatal(err)
			}
			if err := VerifyLeaf(cert, ca.Cert, ServerProfile, now); err == nil {
				t.Error("client cert accepted as server cert")
			}
			if cert.Subject.CommonName != "alice" || cert.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("CN %q KU %v", cert.Subject.CommonName, cert.KeyUsage)
			}
			if got := cert.NotAfter.Sub(cert.NotBefore); got != DefaultClientLifetime+Backdate {
				t.Errorf("lifetime %v", got)
			}
		})
	}
}

func TestIssueRejects(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, ECDSAP256, CAOptions{Now: now, Lifetime: 30 * 24 * time.Hour})
	key, _ := GenerateKey(ECDSAP256)
	other := mustCA(t, ECDSAP256, CAOptions{Now: now})
	tests := []struct {
		name string
		ca   *CA
		req  IssueRequest
		want string
	}{
		{"server without SANs", ca, IssueRequest{Profile: ServerProfile, PublicKey: key.Public()}, "at least one DNS name"},
		{"client without name", ca, IssueRequest{Profile: ClientProfile, PublicKey: key.Public()}, "needs a name"},
		{"outlives CA", ca, IssueRequest{Profile: ClientProfile, CommonName: "a", PublicKey: key.Public(), Lifetime: 31 * 24 * time.Hour}, "outlive its CA"},
		{"CA expired", ca, IssueRequest{Profile: ClientProfile, CommonName: "a", PublicKey: key.Public(), Now: now.Add(31 * 24 * time.Hour)}, "expired"},
		{"CA not yet valid", ca, IssueRequest{Profile: ClientProfile, CommonName: "a", PublicKey: key.Public(), Now: now.Add(-time.Hour)}, "not valid until"},
		{"unknown profile", ca, IssueRequest{Profile: "peer", CommonName: "a", PublicKey: key.Public()}, "unknown profile"},
		{"no key", ca, IssueRequest{Profile: ClientProfile, CommonName: "a"}, "no public key"},
		{"negative lifetime", other, IssueRequest{Profile: ClientProfile, CommonName: "a", PublicKey: key.Public(), Lifetime: -time.Hour}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.req.Now.IsZero() {
				tt.req.Now = now
			}
			_, err := tt.ca.Issue(tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestLoadCA(t *testing.T) {
	ca := mustCA(t, ECDSAP256, CAOptions{})
	other, _ := GenerateKey(ECDSAP256)
	if _, err := LoadCA(ca.Cert, ca.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(ca.Cert, other); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched key: %v", err)
	}
	leafKey, _ := GenerateKey(ECDSAP256)
	leaf, err := ca.Issue(IssueRequest{Profile: ClientProfile, CommonName: "x", PublicKey: leafKey.Public()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(leaf, leafKey); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Fatalf("leaf as CA: %v", err)
	}
}

func TestVerifyLeafNamesTheCause(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, ECDSAP256, CAOptions{CommonName: "right", Now: now})
	wrong := mustCA(t, ECDSAP256, CAOptions{CommonName: "wrong", Now: now})
	key, _ := GenerateKey(ECDSAP256)
	cert, err := wrong.Issue(IssueRequest{Profile: ClientProfile, CommonName: "bob", PublicKey: key.Public(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	err = VerifyLeaf(cert, ca.Cert, ClientProfile, now)
	if err == nil || !strings.Contains(err.Error(), `issued by "wrong"`) {
		t.Fatalf("err = %v", err)
	}
	err = VerifyLeaf(cert, wrong.Cert, ClientProfile, now.Add(100*24*time.Hour))
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}
	err = VerifyLeaf(cert, wrong.Cert, ClientProfile, now.Add(-time.Hour))
	if err == nil || !strings.Contains(err.Error(), "not valid until") {
		t.Fatalf("not yet valid: %v", err)
	}
}

func TestSignCSR(t *testing.T) {
	ca := mustCA(t, ECDSAP256, CAOptions{})
	key, _ := GenerateKey(Ed25519)
	csr, err := NewCSR(key, "mallory-wants-to-be-root", mustSANs(t, "evil.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.SignCSR(csr, IssueRequest{Profile: ClientProfile, CommonName: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	// The CA side decides the subject; the CSR contributes only its key.
	if cert.Subject.CommonName != "alice" || len(cert.DNSNames) != 0 {
		t.Errorf("CSR content leaked into cert: CN %q DNS %v", cert.Subject.CommonName, cert.DNSNames)
	}
	if err := CheckKeyMatch(cert, key); err != nil {
		t.Error(err)
	}
	csr.Signature[0] ^= 0xff
	if _, err := ca.SignCSR(csr, IssueRequest{Profile: ClientProfile, CommonName: "alice"}); err == nil {
		t.Error("tampered CSR accepted")
	}
}

func TestSerialsAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s, err := NewSerial()
		if err != nil {
			t.Fatal(err)
		}
		if seen[s.String()] {
			t.Fatal("duplicate serial")
		}
		seen[s.String()] = true
	}
}

func TestParseKeyType(t *testing.T) {
	for in, want := range map[string]KeyType{"": ECDSAP256, "ecdsa": ECDSAP256, "P-384": ECDSAP384, "rsa": RSA2048, "RSA4096": RSA4096, "rsa-3072": RSA3072, "ed25519": Ed25519} {
		got, err := ParseKeyType(in)
		if err != nil || got != want {
			t.Errorf("ParseKeyType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseKeyType("dsa"); err == nil || !strings.Contains(err.Error(), "ecdsa-p256") {
		t.Errorf("dsa: %v", err)
	}
}

func TestKeyTypeOf(t *testing.T) {
	for _, kt := range KeyTypes() {
		key, err := GenerateKey(kt)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := KeyTypeOf(key.Public()); err != nil || got != kt {
			t.Errorf("KeyTypeOf(%s) = %q, %v", kt, got, err)
		}
	}
}

func TestCheckNameRefusesControlCharacters(t *testing.T) {
	key, _ := GenerateKey(ECDSAP256)
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"alice@laptop", true},
		{"Ünïcode ok", true},
		{"alice\nprod  tcp://evil", false},
		{"tab\there", false},
		{"esc\x1b[31m", false},
		{"alice\u202egpj.exe", false}, // right-to-left override
		{"bob\u2066isolate\u2069", false},
		{"mark\u200f", false},
		{"עברית", true}, // right-to-left text itself is fine
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
	} {
		err := CheckName("common name", tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("CheckName(%q) = %v", tt.name, err)
		}
		_, caErr := NewCA(key, CAOptions{CommonName: tt.name})
		_, csrErr := NewCSR(key, tt.name, SANs{})
		if (caErr == nil) != tt.ok || (csrErr == nil) != tt.ok {
			t.Errorf("%q: NewCA %v, NewCSR %v", tt.name, caErr, csrErr)
		}
	}
	ca, _ := NewCA(key, CAOptions{})
	if _, err := ca.Issue(IssueRequest{Profile: ClientProfile, CommonName: "a\nb", PublicKey: key.Public()}); err == nil || !strings.Contains(err.Error(), "U+000A") {
		t.Fatalf("Issue = %v", err)
	}
}

func TestVerifyLeafRefusesACACertificate(t *testing.T) {
	key, _ := GenerateKey(ECDSAP256)
	ca, _ := NewCA(key, CAOptions{CommonName: "root"})
	if err := VerifyLeaf(ca.Cert, ca.Cert, ClientProfile, time.Now()); err == nil || !strings.Contains(err.Error(), "CA:TRUE") {
		t.Fatalf("VerifyLeaf(CA as client) = %v", err)
	}
}
