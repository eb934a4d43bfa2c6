package castore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker-tls/docker-tls/internal/journal"
	"github.com/docker-tls/docker-tls/internal/keyringtest"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

func newStore(t *testing.T) (*Store, *keystore.File) {
	t.Helper()
	base := t.TempDir()
	stores := keystore.Stores{Dir: filepath.Join(base, "keys")}
	s := New(filepath.Join(base, "ca"), stores, journal.New(base, stores.TempDir()))
	return s, &keystore.File{Dir: stores.Dir}
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
	got, err := s.Create("default", ca, CreateOptions{KeyStore: keystore.KindFile})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(ca.Cert) || got.KeyStore != "file" || got.KeyID == "" {
		t.Fatalf("got %+v", got.Meta)
	}
	if fi, _ := os.Stat(s.Dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("CA dir mode %v", fi.Mode())
	}
	signer, err := s.Signer(got, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.CheckKeyMatch(signer.Cert, signer.Key); err != nil {
		t.Fatal(err)
	}

	// A second CA under the same name is refused and changes nothing.
	if _, err := s.Create("default", newCA(t), CreateOptions{KeyStore: keystore.KindFile}); !errors.Is(err, ErrExists) {
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
	if _, err := s.Create("default", ca2, CreateOptions{KeyStore: keystore.KindFile, Force: true}); err != nil {
		t.Fatal(err)
	}
	again, _ = s.Get("default")
	if !again.Cert.Equal(ca2.Cert) {
		t.Fatal("not replaced")
	}
	if ids, _ := keys.List(""); len(ids) != 1 || ids[0] != again.KeyID {
		t.Fatalf("keys after replace: %v", ids)
	}

	if _, err := s.Create("other", newCA(t), CreateOptions{KeyStore: keystore.KindFile}); err != nil {
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

func newStoreWithKeyring(t *testing.T) (*Store, keystore.Stores, *keyringtest.Backend, string) {
	t.Helper()
	base := t.TempDir()
	kr := keyringtest.New()
	stores := keystore.Stores{Dir: filepath.Join(base, "keys"), Backend: kr}
	return New(filepath.Join(base, "ca"), stores, journal.New(base, stores.TempDir())), stores, kr, base
}

// allKeys lists every key in both stores as "kind/id".
func allKeys(t *testing.T, stores keystore.Stores) []string {
	t.Helper()
	var out []string
	for _, kind := range keystore.KindNames() {
		ks, _ := stores.Open(kind, nil)
		ids, err := ks.List("")
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			out = append(out, kind+"/"+id)
		}
	}
	return out
}

// A crash at each step of `ca init --force` leaves the old CA (before the
// key is committed) or the new one (after), each with exactly its key.
func TestCrashDuringReplaceIsRecovered(t *testing.T) {
	for steps, want := range []string{"old", "old", "new", "new"} {
		t.Run(fmt.Sprint(steps), func(t *testing.T) {
			s, stores, _, base := newStoreWithKeyring(t)
			first, err := s.Create("default", newCA(t), CreateOptions{KeyStore: keystore.KindFile})
			if err != nil {
				t.Fatal(err)
			}
			ca2 := newCA(t)
			p := plan{Old: new(first.KeyRef()), New: keystore.Ref{Store: keystore.KindKeyring, ID: KeyID("default", ca2.Cert)}, PutKey: true,
				CertPEM: string(pki.EncodeCertificate(ca2.Cert)), Meta: Meta{Name: "default", KeyStore: keystore.KindKeyring, KeyID: KeyID("default", ca2.Cert)}}
			func() {
				release, _ := s.j.Lock()
				defer release() // the process dies: the OS drops its lock
				e, _ := s.j.Begin(owner, "create", "default", p)
				ks, _ := stores.Open(keystore.KindKeyring, nil)
				for i, step := range []func() error{
					func() error { return ks.Put(p.New.ID, ca2.Key, true) },
					func() error { return e.Advance(phaseKeyStored) },
					func() error { return s.writeDir("default", p) },
				} {
					if i == steps {
						return
					}
					if err := step(); err != nil {
						t.Fatal(err)
					}
				}
			}()
			next := New(s.Dir, stores, journal.New(base, stores.TempDir()))
			release, err := next.j.Lock()
			if err != nil {
				t.Fatal(err)
			}
			release()
			got, err := next.Get("default")
			if err != nil {
				t.Fatal(err)
			}
			wantCA, wantRef := first.Cert, first.KeyRef()
			if want == "new" {
				wantCA, wantRef = ca2.Cert, p.New
			}
			if !got.Cert.Equal(wantCA) || got.KeyRef() != wantRef {
				t.Fatalf("CA is %s, want the %s one", got.KeyRef(), want)
			}
			if keys := allKeys(t, stores); len(keys) != 1 || keys[0] != wantRef.String() {
				t.Fatalf("keys %v, want only %s", keys, wantRef)
			}
			if _, err := next.Signer(got, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// An encrypted file-store CA key moves to the keyring and back; back in the
// file store it is encrypted again with the passphrase given.
func TestMoveKeyKeepsEncryption(t *testing.T) {
	s, stores, _, _ := newStoreWithKeyring(t)
	pass := []byte("correct horse")
	if _, err := s.Create("default", newCA(t), CreateOptions{KeyStore: keystore.KindFile, Passphrase: pass}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MoveKey("default", keystore.KindKeyring, nil); !errors.Is(err, pki.ErrPassphraseRequired) {
		t.Fatalf("move without the passphrase: %v", err)
	}
	for _, step := range []struct {
		to    string
		moved bool
	}{{keystore.KindKeyring, true}, {keystore.KindKeyring, false}, {keystore.KindFile, true}} {
		moved, err := s.MoveKey("default", step.to, pass)
		if err != nil || moved != step.moved {
			t.Fatalf("to %s: %v %v", step.to, moved, err)
		}
		ca, _ := s.Get("default")
		if ca.KeyStore != step.to {
			t.Fatalf("key store %s", ca.KeyStore)
		}
		if keys := allKeys(t, stores); len(keys) != 1 || keys[0] != ca.KeyRef().String() {
			t.Fatalf("keys %v", keys)
		}
	}
	ca, _ := s.Get("default")
	if _, err := s.Signer(ca, nil); !errors.Is(err, pki.ErrPassphraseRequired) {
		t.Fatalf("back in the file store the key is not encrypted: %v", err)
	}
	if _, err := s.Signer(ca, pass); err != nil {
		t.Fatal(err)
	}
}

// A key store that refuses the key leaves the old CA and nothing else.
func TestFailedReplaceKeepsTheOld(t *testing.T) {
	s, stores, kr, _ := newStoreWithKeyring(t)
	first, err := s.Create("default", newCA(t), CreateOptions{KeyStore: keystore.KindFile})
	if err != nil {
		t.Fatal(err)
	}
	kr.FailSet(true)
	if _, err := s.Create("default", newCA(t), CreateOptions{KeyStore: keystore.KindKeyring, Force: true}); err == nil {
		t.Fatal("replace succeeded with a failing keyring")
	}
	got, _ := s.Get("default")
	if !got.Cert.Equal(first.Cert) {
		t.Fatal("the old CA was replaced")
	}
	if keys := allKeys(t, stores); len(keys) != 1 || keys[0] != first.KeyRef().String() {
		t.Fatalf("keys %v", keys)
	}
}

// A keyring that cannot be reached at all (no Secret Service) is refused
// before the change records its intent: nothing is left whose undo would
// need that keyring, so the next command, with the file store, just runs.
func TestCreateWithUnreachableKeyringRecordsNothing(t *testing.T) {
	s, stores, kr, base := newStoreWithKeyring(t)
	kr.Unreachable(true)
	_, err := s.Create("default", newCA(t), CreateOptions{KeyStore: keystore.KindKeyring})
	if !errors.Is(err, keystore.ErrKeyringUnavailable) {
		t.Fatalf("Create into an unreachable keyring = %v, want ErrKeyringUnavailable", err)
	}
	if pending, err := journal.New(base, stores.TempDir()).Pending(); err != nil || len(pending) != 0 {
		t.Fatalf("journal after the refusal: %v, %v; want nothing pending", pending, err)
	}
	if _, err := s.Get("default"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after the refusal = %v, want ErrNotFound", err)
	}
	if _, err := s.Create("default", newCA(t), CreateOptions{KeyStore: keystore.KindFile}); err != nil {
		t.Fatalf("the next Create, with the file store: %v", err)
	}
}
