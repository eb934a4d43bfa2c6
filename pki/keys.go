package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"
)

// KeyType names a private key algorithm and size, as users type it.
type KeyType string

// The key types docker-tls makes. Docker's engine and CLI (Go's crypto/tls)
// accept all of them; ECDSA P-256 is the default because it is fast, small and
// accepted by every TLS stack Docker users meet (curl, browsers, Windows).
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	ECDSAP384 KeyType = "ecdsa-p384"
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	RSA4096   KeyType = "rsa-4096"
	Ed25519   KeyType = "ed25519"

	DefaultKeyType = ECDSAP256
)

// KeyTypes lists every supported key type, default first.
func KeyTypes() []KeyType {
	return []KeyType{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096, Ed25519}
}

// ParseKeyType accepts the names in KeyTypes and a few common spellings
// ("ecdsa", "p256", "rsa", "rsa4096", "ed25519").
func ParseKeyType(s string) (KeyType, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	n = strings.NewReplacer("_", "-", ":", "-").Replace(n)
	switch n {
	case "", "ecdsa", "ec", "p256", "p-256", "ecdsa-p256", "ecdsa-p-256", "ec-p256", "prime256v1", "secp256r1":
		return ECDSAP256, nil
	case "p384", "p-384", "ecdsa-p384", "ecdsa-p-384", "ec-p384", "secp384r1":
		return ECDSAP384, nil
	case "rsa", "rsa2048", "rsa-2048":
		return RSA2048, nil
	case "rsa3072", "rsa-3072":
		return RSA3072, nil
	case "rsa4096", "rsa-4096":
		return RSA4096, nil
	case "ed25519":
		return Ed25519, nil
	}
	names := make([]string, 0, len(KeyTypes()))
	for _, t := range KeyTypes() {
		names = append(names, string(t))
	}
	return "", fmt.Errorf("unknown key type %q: use one of %s", s, strings.Join(names, ", "))
}

// GenerateKey makes a new private key of type t from crypto/rand.
func GenerateKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case ECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("unknown key type %q", t)
}

// DescribeKey says what a public key is, the way users read it:
// "ECDSA P-256", "RSA 4096", "Ed25519".
func DescribeKey(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// minRSABits is the smallest RSA modulus docker-tls accepts anywhere, made or
// imported: Go's crypto/tls refuses anything below 1024 bits, and NIST
// deprecated less than 2048 bits in 2013.
const minRSABits = 2048

// CheckPublicKey refuses a public key that a modern verifier would reject
// or that gives less than 112-bit security (a CSR's, before its signature
// is checked: Go refuses to verify with RSA keys under 1024 bits, and the
// resulting "signature does not verify" would hide the real cause).
func CheckPublicKey(pub crypto.PublicKey) error { return checkKeyStrength(pub) }

// checkKeyStrength refuses keys that a modern verifier would reject or that
// give less than 112-bit security.
func checkKeyStrength(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key has %d bits; at least %d are required", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("ECDSA curve %s is not supported by Go's TLS stack", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported public key type %T", pub)
	}
	return nil
}

// KeyTypeOf says which KeyType a public key is, so that a new key can be
// made like an existing one (renew --rekey).
func KeyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECDSAP256, nil
		case elliptic.P384():
			return ECDSAP384, nil
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return RSA2048, nil
		case 3072:
			return RSA3072, nil
		case 4096:
			return RSA4096, nil
		}
	case ed25519.PublicKey:
		return Ed25519, nil
	}
	return "", fmt.Errorf("docker-tls cannot make a new %s key: renew without --rekey, or issue anew with --key-type", DescribeKey(pub))
}
