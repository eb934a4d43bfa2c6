package pki

import (
	"crypto"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

func TestEncodePKCS12(t *testing.T) {
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := NewCA(key, CAOptions{CommonName: "p12 CA"})
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := GenerateKey(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(IssueRequest{Profile: ClientProfile, CommonName: "alice", PublicKey: leafKey.Public(), Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, legacy := range []bool{false, true} {
		data, err := EncodePKCS12(leafKey, cert, ca.Cert, "pw", legacy)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := pkcs12.DecodeChain(data, "wrong"); err == nil {
			t.Errorf("legacy=%v: opened with the wrong password", legacy)
		}
		k, c, chain, err := pkcs12.DecodeChain(data, "pw")
		if err != nil {
			t.Fatalf("legacy=%v: %v", legacy, err)
		}
		if !c.Equal(cert) || len(chain) != 1 || !chain[0].Equal(ca.Cert) {
			t.Errorf("legacy=%v: certificate or chain not kept", legacy)
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			t.Fatalf("legacy=%v: the key is a %T", legacy, k)
		}
		if err := CheckKeyMatch(c, signer); err != nil {
			t.Errorf("legacy=%v: key: %v", legacy, err)
		}
	}
}
