package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/youmark/pkcs8"
)

// ErrPassphraseRequired is returned when a key is encrypted and no passphrase
// was given. Callers turn it into "pass --passphrase-file".
var ErrPassphraseRequired = errors.New("the private key is encrypted and needs a passphrase")

// ErrWrongPassphrase is returned when a passphrase does not decrypt a key.
var ErrWrongPassphrase = errors.New("wrong passphrase for the private key")

// ErrNoPEM is returned when data holds neither PEM nor DER that parses.
var ErrNoPEM = errors.New("no PEM block found")

// ParseCertificates reads every certificate in data: one or more PEM
// "CERTIFICATE" blocks (other blocks, such as the text openssl x509 -text puts
// first, are skipped) or a single DER certificate. Errors never quote the
// input, so a key pasted by mistake cannot end up in a terminal log.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	sawKey := false
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
			}
			certs = append(certs, c)
		default:
			if isKeyBlock(block.Type) {
				sawKey = true
			}
		}
	}
	if len(certs) > 0 {
		return certs, nil
	}
	if sawKey {
		return nil, errors.New("this file holds a private key, not a certificate")
	}
	if looksPEM(data) {
		return nil, errors.New("no CERTIFICATE PEM block found (the PEM is malformed or holds something else)")
	}
	c, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, errors.New("not a certificate: neither PEM nor DER that parses")
	}
	return []*x509.Certificate{c}, nil
}

// ParseCertificate reads exactly one certificate; see ParseCertificates.
func ParseCertificate(data []byte) (*x509.Certificate, error) {
	certs, err := ParseCertificates(data)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("expected one certificate, found %d", len(certs))
	}
	return certs[0], nil
}

// EncodeCertificate returns the PEM form of a certificate.
func EncodeCertificate(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func isKeyBlock(t string) bool {
	switch t {
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return true
	}
	return false
}

func looksPEM(data []byte) bool {
	return bytes.Contains(data, []byte("-----BEGIN"))
}

// IsEncryptedKey reports whether data holds a private key that needs a
// passphrase, so a CLI can ask for one before trying.
func IsEncryptedKey(data []byte) bool {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return false
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" {
			return true
		}
		//lint:ignore SA1019 detecting legacy encryption is exactly what is needed here: such keys are refused without a passphrase
		if isKeyBlock(block.Type) && x509.IsEncryptedPEMBlock(block) {
			return true
		}
	}
}

// ParsePrivateKey reads a private key in any format openssl writes:
//   - PEM "PRIVATE KEY" (PKCS#8), "RSA PRIVATE KEY" (PKCS#1),
//     "EC PRIVATE KEY" (SEC1, with or without the "EC PARAMETERS" block
//     that openssl ecparam -genkey puts first);
//   - PEM "ENCRYPTED PRIVATE KEY" (PKCS#8 with PBES2, what OpenSSL 3
//     genrsa -aes256 and pkcs8 -topk8 write);
//   - legacy "Proc-Type: 4,ENCRYPTED" PEM (OpenSSL 1.x genrsa -aes256);
//   - the same three structures as raw DER.
//
// passphrase may be nil for unencrypted keys. An encrypted key without a
// passphrase returns ErrPassphraseRequired; a passphrase that does not decrypt
// it returns ErrWrongPassphrase. Errors never quote the input.
func ParsePrivateKey(data, passphrase []byte) (crypto.Signer, error) {
	rest := data
	sawCert := false
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "ENCRYPTED PRIVATE KEY":
			if len(passphrase) == 0 {
				return nil, ErrPassphraseRequired
			}
			return parseEncryptedPKCS8(block.Bytes, passphrase)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			return parseKeyBlock(block, passphrase)
		case "OPENSSH PRIVATE KEY":
			return nil, errors.New("this is an OpenSSH key; convert it with: ssh-keygen -p -m PKCS8 -f FILE")
		case "CERTIFICATE":
			sawCert = true
		}
	}
	if sawCert {
		return nil, errors.New("this file holds a certificate, not a private key")
	}
	if looksPEM(data) {
		return nil, errors.New("no private key PEM block found (the PEM is malformed or holds something else)")
	}
	return parseKeyDER(data, passphrase)
}

// parseKeyBlock reads a plain PEM key block, or one encrypted the legacy
// way (Proc-Type: 4,ENCRYPTED).
func parseKeyBlock(block *pem.Block, passphrase []byte) (crypto.Signer, error) {
	//lint:ignore SA1019 legacy PEM encryption is what the articles' openssl 1.x commands produce; reading it is required
	if !x509.IsEncryptedPEMBlock(block) {
		return parsePlainKeyDER(block.Bytes)
	}
	if len(passphrase) == 0 {
		return nil, ErrPassphraseRequired
	}
	//lint:ignore SA1019 reading the legacy format, see above; docker-tls never writes it
	plain, err := x509.DecryptPEMBlock(block, passphrase)
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, ErrWrongPassphrase
	}
	if err != nil {
		return nil, fmt.Errorf("decrypt legacy PEM key: %w", err)
	}
	return parsePlainKeyDER(plain)
}

// parseKeyDER reads a raw DER key: the plain encodings, then encrypted
// PKCS#8.
func parseKeyDER(data, passphrase []byte) (crypto.Signer, error) {
	if k, err := parsePlainKeyDER(data); err == nil {
		return k, nil
	}
	var enc struct {
		Alg  asn1.RawValue
		Data []byte
	}
	if _, err := asn1.Unmarshal(data, &enc); err == nil && len(enc.Data) > 0 {
		if len(passphrase) == 0 {
			return nil, ErrPassphraseRequired
		}
		return parseEncryptedPKCS8(data, passphrase)
	}
	return nil, errors.New("not a private key: neither PEM nor DER that parses")
}

func parseEncryptedPKCS8(der, passphrase []byte) (crypto.Signer, error) {
	k, _, err := pkcs8.ParsePrivateKey(der, passphrase)
	if err != nil {
		// The library reports a failed decryption as a parse failure of the
		// decrypted bytes; anything else is a format it does not support.
		if err.Error() == "pkcs8: incorrect password" {
			return nil, ErrWrongPassphrase
		}
		return nil, fmt.Errorf("encrypted PKCS#8 key: %w", err)
	}
	return asSigner(k)
}

func parsePlainKeyDER(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return asSigner(k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return asSigner(k)
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return asSigner(k)
	}
	return nil, errors.New("the private key is not PKCS#8, PKCS#1 or SEC1 DER")
}

func asSigner(k any) (crypto.Signer, error) {
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	if err := checkKeyStrength(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

// pbkdf2Iterations follows OWASP's 2023 advice for PBKDF2-HMAC-SHA256. A key
// file is decrypted once per command, so the ~0.3 s this costs is paid where
// it protects most: against offline guessing of a stolen file.
const pbkdf2Iterations = 600_000

// EncodePrivateKey returns the key as PEM. Without a passphrase it is
// unencrypted PKCS#8 ("PRIVATE KEY"), the form Docker, curl and openssl read.
// With one it is PKCS#8 encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC),
// the same structure OpenSSL 3 writes, readable by openssl pkey -passin.
func EncodePrivateKey(key crypto.Signer, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("encode private key: %w", err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	}
	opts := &pkcs8.Opts{
		Cipher: pkcs8.AES256CBC,
		KDFOpts: pkcs8.PBKDF2Opts{
			SaltSize:       16,
			IterationCount: pbkdf2Iterations,
			HMACHash:       crypto.SHA256,
		},
	}
	der, err := pkcs8.MarshalPrivateKey(key, passphrase, opts)
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), nil
}

// MarshalPrivateKeyDER returns unencrypted PKCS#8 DER, the form keystores keep.
func MarshalPrivateKeyDER(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return der, nil
}
