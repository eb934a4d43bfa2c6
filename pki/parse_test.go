package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePrivateKeyFormats(t *testing.T) {
	rsaKey, _ := GenerateKey(RSA2048)
	ecKey, _ := GenerateKey(ECDSAP256)
	edKey, _ := GenerateKey(Ed25519)
	pkcs1 := x509.MarshalPKCS1PrivateKey(rsaKey.(*rsa.PrivateKey))
	sec1, _ := x509.MarshalECPrivateKey(ecKey.(*ecdsa.PrivateKey))
	p8, _ := x509.MarshalPKCS8PrivateKey(edKey)
	pass := []byte("correct horse")
	//lint:ignore SA1019 producing the legacy format on purpose, to test reading it
	legacy, err := x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", pkcs1, pass, x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	encP8, err := EncodePrivateKey(ecKey, pass)
	if err != nil {
		t.Fatal(err)
	}
	ecParams := append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...)
	tests := []struct {
		name string
		data []byte
		pass []byte
		want crypto.Signer
	}{
		{"PKCS#1 PEM", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: pkcs1}), nil, rsaKey},
		{"SEC1 PEM", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), nil, ecKey},
		{"SEC1 PEM after EC PARAMETERS", ecParams, nil, ecKey},
		{"PKCS#8 PEM", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), nil, edKey},
		{"PKCS#1 DER", pkcs1, nil, rsaKey},
		{"SEC1 DER", sec1, nil, ecKey},
		{"PKCS#8 DER", p8, nil, edKey},
		{"legacy encrypted PEM", pem.EncodeToMemory(legacy), pass, rsaKey},
		{"encrypted PKCS#8 PEM", encP8, pass, ecKey},
		{"encrypted PKCS#8 DER", pemBody(t, encP8), pass, ecKey},
		{"passphrase ignored for plain key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), pass, edKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePrivateKey(tt.data, tt.pass)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckKeyMatch(&x509.Certificate{PublicKey: tt.want.Public()}, got); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func pemBody(t *testing.T, data []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("no PEM")
	}
	return b.Bytes
}

func TestParsePrivateKeyErrors(t *testing.T) {
	ecKey, _ := GenerateKey(ECDSAP256)
	pass := []byte("s3cret-pass")
	enc, _ := EncodePrivateKey(ecKey, pass)
	plain, _ := EncodePrivateKey(ecKey, nil)
	ca := mustCA(t, ECDSAP256, CAOptions{})
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakDER := x509.MarshalPKCS1PrivateKey(weak)
	tests := []struct {
		name    string
		data    []byte
		pass    []byte
		wantErr error
		wantMsg string
	}{
		{"no passphrase", enc, nil, ErrPassphraseRequired, ""},
		{"wrong passphrase", enc, []byte("nope"), ErrWrongPassphrase, ""},
		{"certificate", EncodeCertificate(ca.Cert), nil, nil, "certificate, not a private key"},
		{"garbage", []byte("hello world"), nil, nil, "not a private key"},
		{"empty", nil, nil, nil, "not a private key"},
		{"truncated PEM", plain[:len(plain)/2], nil, nil, "malformed"},
		{"openssh", []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"), nil, nil, "ssh-keygen"},
		{"weak RSA", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: weakDER}), nil, nil, "at least 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePrivateKey(tt.data, tt.pass)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %q, want it to mention %q", err, tt.wantMsg)
			}
			assertNoSecret(t, err.Error(), tt.data, tt.pass)
		})
	}
}

// assertNoSecret fails if msg quotes any line of the key material or the
// passphrase.
func assertNoSecret(t *testing.T, msg string, data, pass []byte) {
	t.Helper()
	if len(pass) > 0 && strings.Contains(msg, string(pass)) {
		t.Fatalf("error quotes the passphrase: %q", msg)
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(line) >= 16 && !bytes.HasPrefix(line, []byte("-----")) && strings.Contains(msg, string(line[:16])) {
			t.Fatalf("error quotes the input: %q", msg)
		}
	}
}

func TestParseCertificates(t *testing.T) {
	ca := mustCA(t, ECDSAP256, CAOptions{})
	key, _ := GenerateKey(ECDSAP256)
	leaf, _ := ca.Issue(IssueRequest{Profile: ClientProfile, CommonName: "c", PublicKey: key.Public()})
	keyPEM, _ := EncodePrivateKey(key, nil)
	bundle := append(append([]byte("Certificate:\n  text openssl prints\n"), EncodeCertificate(leaf)...), EncodeCertificate(ca.Cert)...)
	certs, err := ParseCertificates(bundle)
	if err != nil || len(certs) != 2 {
		t.Fatalf("bundle: %d certs, %v", len(certs), err)
	}
	if c, err := ParseCertificate(ca.Cert.Raw); err != nil || !c.Equal(ca.Cert) {
		t.Fatalf("DER: %v", err)
	}
	if _, err := ParseCertificate(bundle); err == nil {
		t.Error("two certs accepted as one")
	}
	for name, data := range map[string][]byte{
		"key":     keyPEM,
		"garbage": []byte("nothing here"),
		"broken":  []byte("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
	} {
		if _, err := ParseCertificates(data); err == nil {
			t.Errorf("%s accepted as certificate", name)
		} else {
			assertNoSecret(t, err.Error(), data, nil)
		}
	}
}

func TestEncodePrivateKeyRoundTrip(t *testing.T) {
	for _, kt := range KeyTypes() {
		key, _ := GenerateKey(kt)
		for _, pass := range [][]byte{nil, []byte("pw")} {
			data, err := EncodePrivateKey(key, pass)
			if err != nil {
				t.Fatal(err)
			}
			if IsEncryptedKey(data) != (pass != nil) {
				t.Errorf("%s: IsEncryptedKey wrong for pass=%q", kt, pass)
			}
			back, err := ParsePrivateKey(data, pass)
			if err != nil {
				t.Fatalf("%s: %v", kt, err)
			}
			if err := CheckKeyMatch(&x509.Certificate{PublicKey: key.Public()}, back); err != nil {
				t.Fatalf("%s: %v", kt, err)
			}
		}
	}
}

// TestOpenSSLKeys reads keys the way the source articles and OpenSSL 3 make
// them, and checks that openssl reads the keys docker-tls writes.
func TestOpenSSLKeys(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed (apt-get install openssl)")
	}
	dir := t.TempDir()
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, []byte("article-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("genrsa", "-aes256", "-passout", "file:"+passFile, "-out", "ca-private.pem", "2048")
	run("genrsa", "-out", "server-key.pem", "2048")
	run("ecparam", "-name", "prime256v1", "-genkey", "-out", "ec.pem")
	run("genpkey", "-algorithm", "ed25519", "-out", "ed.pem")
	run("rsa", "-in", "server-key.pem", "-traditional", "-aes128", "-passout", "file:"+passFile, "-out", "legacy.pem")
	run("pkcs8", "-topk8", "-in", "ec.pem", "-v2", "aes-256-cbc", "-passout", "file:"+passFile, "-out", "ec-enc.pem")
	run("pkey", "-in", "server-key.pem", "-outform", "DER", "-out", "server-key.der")
	for _, f := range []struct {
		file string
		pass string
	}{
		{"ca-private.pem", "article-pass"}, {"server-key.pem", ""}, {"ec.pem", ""}, {"ed.pem", ""},
		{"legacy.pem", "article-pass"}, {"ec-enc.pem", "article-pass"}, {"server-key.der", ""},
	} {
		data, err := os.ReadFile(filepath.Join(dir, f.file))
		if err != nil {
			t.Fatal(err)
		}
		if f.pass != "" {
			if _, err := ParsePrivateKey(data, nil); !errors.Is(err, ErrPassphraseRequired) {
				t.Errorf("%s without passphrase: %v", f.file, err)
			}
			if _, err := ParsePrivateKey(data, []byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("%s with wrong passphrase: %v", f.file, err)
			}
		}
		if _, err := ParsePrivateKey(data, []byte(f.pass)); err != nil {
			t.Errorf("%s: %v", f.file, err)
		}
	}
	// openssl reads what we write, encrypted or not.
	key, _ := GenerateKey(ECDSAP256)
	enc, _ := EncodePrivateKey(key, []byte("article-pass"))
	if err := os.WriteFile(filepath.Join(dir, "ours-enc.pem"), enc, 0o600); err != nil {
		t.Fatal(err)
	}
	run("pkey", "-in", "ours-enc.pem", "-passin", "file:"+passFile, "-noout")
}

func FuzzParsePrivateKey(f *testing.F) {
	key, _ := GenerateKey(ECDSAP256)
	plain, _ := EncodePrivateKey(key, nil)
	f.Add(plain, []byte(""))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"), []byte("x"))
	f.Add([]byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n"), []byte("x"))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00}, []byte(""))
	f.Fuzz(func(t *testing.T, data, pass []byte) {
		k, err := ParsePrivateKey(data, pass)
		if err == nil && k == nil {
			t.Fatal("nil key without error")
		}
	})
}

func FuzzParseCertificates(f *testing.F) {
	ca := mustCA(f, ECDSAP256, CAOptions{})
	f.Add(EncodeCertificate(ca.Cert))
	f.Add(ca.Cert.Raw)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertificates(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no certificates without error")
		}
	})
}
