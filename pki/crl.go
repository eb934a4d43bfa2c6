package pki

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Revoked is one entry of a CRL.
type Revoked struct {
	Serial *big.Int
	At     time.Time
}

// CRL is an X.509 v2 certificate revocation list (RFC 5280) signed by ca:
// the revoked serials, number (which only ever grows: a relying party
// keeps the highest it has seen) and the span from now to nextUpdate,
// after which it must not be trusted. It returns the DER.
func (ca *CA) CRL(revoked []Revoked, number *big.Int, now, nextUpdate time.Time) ([]byte, error) {
	if number == nil || number.Sign() <= 0 {
		return nil, errors.New("a CRL number must be positive")
	}
	if !nextUpdate.After(now) {
		return nil, errors.New("a CRL's next update must come after its issue")
	}
	if ca.Cert.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return nil, errors.New("the CA's certificate does not allow signing CRLs (no cRLSign key usage)")
	}
	entries := make([]x509.RevocationListEntry, len(revoked))
	for i, r := range revoked {
		entries[i] = x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.At.UTC()}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    number,
		ThisUpdate:                now.UTC(),
		NextUpdate:                nextUpdate.UTC(),
	}, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign the CRL: %w", err)
	}
	return der, nil
}

// CheckCRL parses der and checks that one of cas signed it and that it is
// current at now. It returns the CRL.
func CheckCRL(der []byte, cas []*x509.Certificate, now time.Time) (*x509.RevocationList, error) {
	crl, _, err := CheckCRLSignature(der, cas)
	if err != nil {
		return nil, err
	}
	if now.After(crl.NextUpdate) {
		return nil, fmt.Errorf("the CRL expired at %s (its next update)", crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	return crl, nil
}

// CheckCRLSignature parses der and checks that one of cas signed it,
// whatever its dates: a relying party that cannot get a newer list keeps
// the revocations of the last one. It returns the CRL and its signer.
func CheckCRLSignature(der []byte, cas []*x509.Certificate) (*x509.RevocationList, *x509.Certificate, error) {
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, nil, fmt.Errorf("not a CRL: %w", err)
	}
	var sigErr error = errors.New("no CA to check it against")
	for _, ca := range cas {
		if sigErr = crl.CheckSignatureFrom(ca); sigErr == nil {
			return crl, ca, nil
		}
	}
	return nil, nil, fmt.Errorf("the CRL is not signed by a trusted CA: %w", sigErr)
}

// EncodeCRL is a CRL in PEM ("X509 CRL"), as openssl crl reads it.
func EncodeCRL(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}
