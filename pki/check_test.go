package pki

import (
	"crypto/x509"
	"strings"
	"testing"
)

func TestKeyUsageNames(t *testing.T) {
	for _, tc := range []struct {
		ku   x509.KeyUsage
		want string
	}{
		{0, ""},
		{x509.KeyUsageDigitalSignature, "digitalSignature"},
		{x509.KeyUsageCRLSign | x509.KeyUsageCertSign, "keyCertSign,cRLSign"},
		{x509.KeyUsageDecipherOnly | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, "digitalSignature,keyEncipherment,decipherOnly"},
	} {
		if got := strings.Join(KeyUsageNames(&x509.Certificate{KeyUsage: tc.ku}), ","); got != tc.want {
			t.Errorf("KeyUsageNames(%b) = %q, want %q", tc.ku, got, tc.want)
		}
	}
}
