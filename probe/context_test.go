package probe

import (
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/internal/pkitest"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

// TestContextsTarget reads a context whose key store copy and key.pem
// agree, disagree either way, or are missing.
func TestContextsTarget(t *testing.T) {
	ca := pkitest.NewCA(t, "probe test CA", "")
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "alice", PublicKey: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	otherPEM, err := pki.EncodePrivateKey(other, nil)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodePrivateKey(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		keyFile     []byte // nil: key.pem as created
		stored      crypto.Signer
		storedErr   error
		wantProblem string
		wantFile    string
	}{
		{name: "both agree", stored: key},
		{name: "key.pem is another key", keyFile: otherPEM, stored: key,
			wantFile: "is not the key of its certificate (the key store's copy is)"},
		{name: "key store holds another key", keyFile: keyPEM, stored: other,
			wantFile: "is not the key of the certificate (the context's key.pem is)"},
		{name: "key.pem unreadable", keyFile: []byte("not a key"), stored: key,
			wantProblem: "key.pem cannot be read", wantFile: "is not a usable key"},
		{name: "key store entry gone, key.pem there", storedErr: errors.New("no such key")},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			store := contexts.Open(dir)
			name := "ctx" + string(rune('a'+i))
			c, _, err := store.Create(contexts.CreateOptions{Name: name, Host: "tcp://127.0.0.1:2376", KeyStore: keystore.KindFile,
				CAName: "default", Identity: contexts.Identity{CA: ca.Cert, Cert: cert, Key: key}})
			if err != nil {
				t.Fatal(err)
			}
			if tc.keyFile != nil {
				if err := os.WriteFile(filepath.Join(c.TLSDir, contexts.KeyFile), tc.keyFile, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			src := Contexts{Store: store, StoredKey: func(*contexts.Context) (crypto.Signer, error) {
				if tc.storedErr != nil {
					return nil, tc.storedErr
				}
				return tc.stored, nil
			}}
			got, err := src.Target(name)
			if err != nil {
				t.Fatal(err)
			}
			if got.CA == nil || !got.CA.Equal(ca.Cert) || got.Cert == nil || !got.Cert.Equal(cert) {
				t.Fatalf("CA or certificate not read: %+v", got)
			}
			if got.Key == nil || pki.CheckKeyMatch(got.Cert, got.Key) != nil {
				t.Errorf("the check would use a key that is not the certificate's (%v)", got.Key)
			}
			if !strings.Contains(got.KeyProblem, tc.wantProblem) || (tc.wantProblem == "") != (got.KeyProblem == "") {
				t.Errorf("KeyProblem = %q, want %q", got.KeyProblem, tc.wantProblem)
			}
			if !strings.Contains(got.KeyFileProblem, tc.wantFile) || (tc.wantFile == "") != (got.KeyFileProblem == "") {
				t.Errorf("KeyFileProblem = %q, want %q", got.KeyFileProblem, tc.wantFile)
			}
			if got.CAName != "default" || got.Host != "tcp://127.0.0.1:2376" {
				t.Errorf("CAName %q, Host %q", got.CAName, got.Host)
			}
		})
	}
	if _, err := (Contexts{Store: contexts.Open(t.TempDir())}).Target("missing"); err == nil {
		t.Error("a missing context gave a target")
	}
}
