package keystore

import (
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-tls/docker-tls/pki"
)

func TestFileStore(t *testing.T) {
	for _, pass := range []string{"", "pw"} {
		t.Run("passphrase="+pass, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			s := &File{Dir: dir, Passphrase: []byte(pass)}
			var _ Store = s
			key, _ := pki.GenerateKey(pki.ECDSAP256)
			if err := s.Put("ca-x", key, false); err != nil {
				t.Fatal(err)
			}
			if err := s.Put("ca-x", key, false); !errors.Is(err, ErrExists) {
				t.Fatalf("second put: %v", err)
			}
			fi, _ := os.Stat(filepath.Join(dir, "ca-x.pem"))
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("key file mode %v", fi.Mode())
			}
			di, _ := os.Stat(dir)
			if di.Mode().Perm() != 0o700 {
				t.Errorf("key dir mode %v", di.Mode())
			}
			enc, err := s.Encrypted("ca-x")
			if err != nil || enc != (pass != "") {
				t.Errorf("Encrypted = %v, %v", enc, err)
			}
			got, err := s.Get("ca-x")
			if err != nil {
				t.Fatal(err)
			}
			if !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Fatal("different key back")
			}
			if pass != "" {
				wrong := &File{Dir: dir, Passphrase: []byte("nope")}
				if _, err := wrong.Get("ca-x"); !errors.Is(err, pki.ErrWrongPassphrase) {
					t.Errorf("wrong passphrase: %v", err)
				}
				none := &File{Dir: dir}
				if _, err := none.Get("ca-x"); !errors.Is(err, pki.ErrPassphraseRequired) {
					t.Errorf("no passphrase: %v", err)
				}
			}
			_ = s.Put("client-a", key, false)
			ids, err := s.List("ca-")
			if err != nil || strings.Join(ids, ",") != "ca-x" {
				t.Errorf("List = %v, %v", ids, err)
			}
			if err := s.Delete("ca-x"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get("ca-x"); !errors.Is(err, ErrNotFound) {
				t.Errorf("after delete: %v", err)
			}
			if err := s.Delete("ca-x"); !errors.Is(err, ErrNotFound) {
				t.Errorf("second delete: %v", err)
			}
		})
	}
}

func TestCheckID(t *testing.T) {
	for _, id := range []string{"", "../x", "a/b", ".hidden", "a b", strings.Repeat("a", 129)} {
		if CheckID(id) == nil {
			t.Errorf("CheckID(%q) accepted", id)
		}
	}
	for _, id := range []string{"ca-default-1a2b", "client.alice_1"} {
		if err := CheckID(id); err != nil {
			t.Errorf("CheckID(%q): %v", id, err)
		}
	}
}

// TestFileStoreContract: the file store keeps the Store contract, the
// refresh token in the key's own 0600 file.
func TestFileStoreContract(t *testing.T) {
	testStoreContract(t, &File{Dir: t.TempDir()})
}
