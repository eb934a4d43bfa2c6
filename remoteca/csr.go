package remoteca

import (
	"crypto/x509"
	"encoding/pem"
	"errors"

	"github.com/docker-tls/docker-tls/pki"
)

func parseCSR(p string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return nil, errors.New("certificate_request is not a PEM CSR")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, errors.New("certificate_request does not parse: " + err.Error())
	}
	if err := pki.CheckPublicKey(csr.PublicKey); err != nil {
		return nil, errors.New("the CSR's key is too weak: " + err.Error() + " (docker tls makes ECDSA P-256 keys)")
	}
	return csr, nil
}

func ipStrings(csr *x509.CertificateRequest) []string {
	var out []string
	for _, ip := range csr.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// EncodeCSR returns the PEM form of a CSR.
func EncodeCSR(csr *x509.CertificateRequest) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw}))
}
