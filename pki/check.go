package pki

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Fingerprint is the SHA-256 of the certificate's DER, as colon-separated
// upper-case hex, the form `openssl x509 -fingerprint -sha256` prints.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// CheckKeyMatch says whether key is the private half of cert's public key.
func CheckKeyMatch(cert *x509.Certificate, key crypto.Signer) error {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	if !ok {
		return fmt.Errorf("unsupported key type %T", key.Public())
	}
	if !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("the private key (%s) does not match the certificate %q (%s)",
			DescribeKey(key.Public()), cert.Subject.CommonName, DescribeKey(cert.PublicKey))
	}
	return nil
}

// CheckValidity says whether cert is valid at now, in words a user can act on.
func CheckValidity(cert *x509.Certificate, now time.Time) error {
	if now.Before(cert.NotBefore) {
		return fmt.Errorf("certificate %q is not valid until %s (check the clocks of both machines)",
			cert.Subject.CommonName, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(cert.NotAfter) {
		return fmt.Errorf("certificate %q expired on %s", cert.Subject.CommonName, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// VerifyLeaf checks leaf against the single root ca with Go's crypto/x509
// verifier, the same one dockerd and the docker CLI use, for the profile's
// EKU. The error names the cause in plain words.
func VerifyLeaf(leaf, ca *x509.Certificate, profile Profile, now time.Time) error {
	if err := CheckValidity(leaf, now); err != nil {
		return err
	}
	if leaf.BasicConstraintsValid && leaf.IsCA {
		return fmt.Errorf("%q is a CA certificate (CA:TRUE), not a %s certificate: give the certificate issued for the %s", leaf.Subject.CommonName, profile, profile)
	}
	eku := x509.ExtKeyUsageClientAuth
	if profile == ServerProfile {
		eku = x509.ExtKeyUsageServerAuth
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{eku},
	})
	if err == nil {
		return nil
	}
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("certificate %q was issued by %q, not by the CA %q (%s)",
			leaf.Subject.CommonName, leaf.Issuer.CommonName, ca.Subject.CommonName, Fingerprint(ca))
	case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
		return fmt.Errorf("certificate %q lacks extended key usage %s, which a %s certificate needs",
			leaf.Subject.CommonName, ekuName(eku), profile)
	}
	return fmt.Errorf("certificate %q does not verify against CA %q: %w", leaf.Subject.CommonName, ca.Subject.CommonName, err)
}

func ekuName(e x509.ExtKeyUsage) string {
	switch e {
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	}
	return fmt.Sprintf("EKU(%d)", e)
}

// EKUNames lists a certificate's extended key usages as openssl names them.
func EKUNames(c *x509.Certificate) []string {
	var out []string
	for _, e := range c.ExtKeyUsage {
		switch e {
		case x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth:
			out = append(out, ekuName(e))
		case x509.ExtKeyUsageAny:
			out = append(out, "any")
		default:
			out = append(out, fmt.Sprintf("EKU(%d)", e))
		}
	}
	return out
}

// keyUsageNames are RFC 5280's names, in its bit order (section 4.2.1.3).
var keyUsageNames = []string{"digitalSignature", "contentCommitment", "keyEncipherment",
	"dataEncipherment", "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}

// KeyUsageNames names the KeyUsage bits a certificate sets, in RFC 5280's
// order, so output is the same on every run.
func KeyUsageNames(c *x509.Certificate) []string {
	var out []string
	for i, name := range keyUsageNames {
		if c.KeyUsage&(1<<i) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// CertSANs returns the SANs a certificate carries.
func CertSANs(c *x509.Certificate) SANs {
	return SANs{DNSNames: c.DNSNames, IPs: c.IPAddresses}
}
