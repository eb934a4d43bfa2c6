package castore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

func newStore(t *testing.T) (*Store, *keystore.File) {
	t.Helper()
	base := t.TempDir()
	keys := &keystore.File{Dir: filepath.Join(base, "keys")}
	s := &Store{Dir: filepath.Join(base, "ca"), KeyStore: func(kind string) (keystore.Store, error) {
		if kind != "file" {
			t.Fatalf("asked for key store %q", kind)
		}
		return keys, nil
	}}
	return s, keys
}

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(key, pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestCreateGetList(t *testing.T) {
	s, keys := newStore(t)
	ca := newCA(t)
	got, err := s.Create("default", ca, CreateOptions{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(ca.Cert) || got.KeyStore != "file" || got.KeyID == "" {
		t.Fatalf("got %+v", got.Meta)
	}
	if fi, _ := os.Stat(s.Dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("CA dir mode %v", fi.Mode())
	}
	signer, err := s.Signer(got)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.CheckKeyMatch(signer.Cert, signer.Key); err != nil {
		t.Fatal(err)
	}

	// A second CA under the same name is refused and changes nothing.
	if _, err := s.Create("default", newCA(t), CreateOptions{Keys: keys}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	again, _ := s.Get("default")
	if !again.Cert.Equal(ca.Cert) {
		t.Fatal("existing CA changed without --force")
	}
	if ids, _ := keys.List(""); len(ids) != 1 {
		t.Fatalf("keys after refused create: %v", ids)
	}

	// --force replaces it and removes the old key.
	ca2 := newCA(t)
	if _, err := s.Create("default", ca2, CreateOptions{Keys: keys, Force: true}); err != nil {
		t.Fatal(err)
	}
	again, _ = s.Get("default")
	if !again.Cert.Equal(ca2.Cert) {
		t.Fatal("not replaced")
	}
	if ids, _ := keys.List(""); len(ids) != 1 || ids[0] != again.KeyID {
		t.Fatalf("keys after replace: %v", ids)
	}

	if _, err := s.Create("other", newCA(t), CreateOptions{Keys: keys}); err != nil {
		t.Fatal(err)
	}
	list, errs, err := s.List()
	if err != nil || len(errs) != 0 || len(list) != 2 || list[0].Name != "default" || list[1].Name != "other" {
		t.Fatalf("List = %v %v %v", list, errs, err)
	}
	entries, _ := os.ReadDir(s.Dir)
	if len(entries) != 2 {
		t.Fatalf("stray entries in CA dir: %v", entries)
	}
	if _, err := s.Get("missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func TestCheckName(t *testing.T) {
	for _, n := range []string{"", "../x", "a/b", "-x", ".x", "a b"} {
		if CheckName(n) == nil {
			t.Errorf("CheckName(%q) accepted", n)
		}
	}
	for _, n := range []string{"default", "prod-1", "team_ca.v2"} {
		if err := CheckName(n); err != nil {
			t.Error(err)
		}
	}
}
