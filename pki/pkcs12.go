package pki

import (
	"crypto"
	"crypto/x509"
	"fmt"

	"software.sslmate.com/src/go-pkcs12"
)

// EncodePKCS12 is a PKCS#12 file (.p12) of key, its certificate cert and
// the CA ca, under password: AES-256-CBC with PBKDF2 and a SHA-256 MAC
// (what current browsers, macOS and Windows read), or with legacy 3DES and
// a SHA-1 MAC, which older systems need.
func EncodePKCS12(key crypto.Signer, cert, ca *x509.Certificate, password string, legacy bool) ([]byte, error) {
	enc := pkcs12.Modern
	if legacy {
		enc = pkcs12.LegacyDES
	}
	data, err := enc.Encode(key, cert, []*x509.Certificate{ca}, password)
	if err != nil {
		return nil, fmt.Errorf("PKCS#12: %w", err)
	}
	return data, nil
}
