// Package pkitest makes the CAs unit tests issue from: ECDSA P-256, valid
// now, made in memory. Only tests import it.
package pkitest

import (
	"testing"

	"github.com/docker-tls/docker-tls/pki"
)

// NewCA makes a CA named cn, of organization org when given.
func NewCA(t testing.TB, cn, org string) *pki.CA {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(key, pki.CAOptions{CommonName: cn, Organization: org})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}
