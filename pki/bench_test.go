package pki

import (
	"testing"
)

// BenchmarkCAInit is the crypto cost of `docker tls ca init` per key type:
// key generation plus the self-signed certificate.
func BenchmarkCAInit(b *testing.B) {
	for _, kt := range KeyTypes() {
		b.Run(string(kt), func(b *testing.B) {
			for b.Loop() {
				key, err := GenerateKey(kt)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := NewCA(key, CAOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchIssue(b *testing.B, p Profile) {
	ca := mustCA(b, ECDSAP256, CAOptions{})
	sans := mustSANs(b, "engine.example.com", "192.0.2.10")
	for _, kt := range KeyTypes() {
		b.Run(string(kt), func(b *testing.B) {
			for b.Loop() {
				key, err := GenerateKey(kt)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := ca.Issue(IssueRequest{Profile: p, PublicKey: key.Public(), CommonName: "alice", SANs: sans}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkServerIssue is the crypto cost of `docker tls server issue` per
// leaf key type, signed by an ECDSA P-256 CA: new key plus signature.
func BenchmarkServerIssue(b *testing.B) { benchIssue(b, ServerProfile) }

// BenchmarkClientIssue is the same for `docker tls client issue`.
func BenchmarkClientIssue(b *testing.B) { benchIssue(b, ClientProfile) }

// BenchmarkParseSANs measures the SAN parser on a typical argument list.
func BenchmarkParseSANs(b *testing.B) {
	in := []string{"engine.example.com", "*.engine.example.com", "192.0.2.10", "DNS:localhost,IP:127.0.0.1,IP:::1"}
	for b.Loop() {
		if _, _, err := ParseSANs(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecryptKey is the cost of opening a passphrase-protected CA key
// (PBKDF2-HMAC-SHA256, 600k iterations): paid once per command.
func BenchmarkDecryptKey(b *testing.B) {
	key, _ := GenerateKey(ECDSAP256)
	enc, err := EncodePrivateKey(key, []byte("pw"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ParsePrivateKey(enc, []byte("pw")); err != nil {
			b.Fatal(err)
		}
	}
}
