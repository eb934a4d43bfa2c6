package contexts

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/docker-tls/docker-tls/internal/journal"
	"github.com/docker-tls/docker-tls/internal/keyringtest"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

type testStore struct {
	*Store
	dir     string
	keyring *keyringtest.Backend
	keys    keystore.Stores
}

func newTestStore(t *testing.T) *testStore {
	t.Helper()
	dir := t.TempDir()
	kr := keyringtest.New()
	keys := keystore.Stores{Dir: filepath.Join(dir, "tls", "keys"), Backend: kr}
	return &testStore{Store: New(dir, keys, journal.New(filepath.Join(dir, "tls"), keys.TempDir())), dir: dir, keyring: kr, keys: keys}
}

// reopen is the next command: a new Store (and journal) on the same files.
func (ts *testStore) reopen() *Store {
	return New(ts.dir, ts.keys, journal.New(filepath.Join(ts.dir, "tls"), ts.keys.TempDir()))
}

// ids lists every key in both stores as "kind/id".
func (ts *testStore) ids(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, kind := range keystore.KindNames() {
		ks, _ := ts.keys.Open(kind, nil)
		ids, err := ks.List("")
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			out = append(out, kind+"/"+id)
		}
	}
	if kr := ts.keyring.Len(); kr != strings.Count(strings.Join(out, " "), "keyring/") {
		t.Fatalf("keyring holds %d entries, its index %v", kr, out)
	}
	return out
}

var testCA = func() *pki.CA {
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	ca, err := pki.NewCA(key, pki.CAOptions{CommonName: "test CA"})
	if err != nil {
		panic(err)
	}
	return ca
}()

func identity(t *testing.T, cn string) Identity {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := testCA.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: cn, PublicKey: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	return Identity{CA: testCA.Cert, Cert: cert, Key: key}
}

func opts(t *testing.T, name string) CreateOptions {
	return CreateOptions{Name: name, Host: "tcp://127.0.0.1:2376", Description: "test", Identity: identity(t, "alice"), KeyStore: keystore.KindFile, CAName: "default"}
}

// usable checks what the docker CLI would load: the context's key.pem is
// the key of its cert.pem, and the key store's copy is that key too.
func usable(t *testing.T, s *Store, name string) *Context {
	t.Helper()
	c, err := s.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckKeyFile(c); err != nil {
		t.Fatal(err)
	}
	cert, _ := s.ReadFile(name, CertFile)
	if _, err := s.storedKey(c, cert); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCreateReplaceLockUnlockRemove(t *testing.T) {
	ts := newTestStore(t)
	o := opts(t, "prod")
	c, replaced, err := ts.Create(o)
	if err != nil || replaced != nil {
		t.Fatal(err, replaced)
	}
	if !c.Managed() || c.Host != o.Host || c.Description != "test" || c.TLS.KeyID != KeyID("prod", o.Cert) || c.TLS.Version != 1 || c.TLS.CA != "default" {
		t.Fatalf("got %+v %+v", c, c.TLS)
	}
	usable(t, ts.Store, "prod")
	if fi, err := os.Stat(filepath.Join(c.TLSDir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key copy: %v %v", fi, err)
	}
	if _, _, err := ts.Create(opts(t, "prod")); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if got := ts.ids(t); len(got) != 1 {
		t.Fatalf("a refused create left keys: %v", got)
	}

	// --force into another store: the old key goes once the new one is in.
	o2 := opts(t, "prod")
	o2.Host, o2.Force, o2.KeyStore = "tcp://10.0.0.1:2376", true, keystore.KindKeyring
	c2, replaced, err := ts.Create(o2)
	if err != nil || replaced == nil || replaced.Host != o.Host {
		t.Fatalf("replace: %v %+v", err, replaced)
	}
	usable(t, ts.Store, "prod")
	if got := ts.ids(t); len(got) != 1 || got[0] != "keyring/"+c2.TLS.KeyID {
		t.Fatalf("keys after replace: %v", got)
	}

	if err := ts.Lock("prod"); err != nil {
		t.Fatal(err)
	}
	if c, _ := ts.Get("prod"); !c.Locked() || !c.HasFile(CAFile) || !c.HasFile(CertFile) {
		t.Fatalf("after lock: %v", c.Files)
	}
	if err := ts.Lock("prod"); !errors.Is(err, ErrAlreadyLocked) {
		t.Fatalf("second lock: %v", err)
	}
	if err := ts.Unlock("prod", false); err != nil {
		t.Fatal(err)
	}
	usable(t, ts.Store, "prod")
	if err := ts.Unlock("prod", false); !errors.Is(err, ErrNotLocked) {
		t.Fatalf("second unlock: %v", err)
	}

	if _, _, err := ts.Create(opts(t, "dev")); err != nil {
		t.Fatal(err)
	}
	list, errs, err := ts.List()
	if err != nil || len(errs) != 0 || len(list) != 2 || list[0].Name != "dev" || list[1].Host != "tcp://10.0.0.1:2376" {
		t.Fatalf("list %v %v %v", list, errs, err)
	}
	if _, err := ts.Remove("prod"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Get("prod"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after remove: %v", err)
	}
	if _, err := os.Stat(c.TLSDir); !os.IsNotExist(err) {
		t.Fatalf("TLS dir left behind: %v", err)
	}
	if got := ts.ids(t); len(got) != 1 || !strings.HasPrefix(got[0], "file/ctx-dev-") {
		t.Fatalf("keys after remove: %v", got)
	}
	if _, err := ts.Remove("prod"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	assertClean(t, ts)
}

// assertClean checks that no change is pending and no scratch file is left.
func assertClean(t *testing.T, ts *testStore) {
	t.Helper()
	for _, d := range []string{filepath.Join(ts.dir, "tls", "journal"), filepath.Join(ts.dir, "tls", "tmp"), ts.keys.TempDir()} {
		if names, _ := os.ReadDir(d); len(names) != 0 {
			t.Fatalf("%s holds %v", d, names)
		}
	}
}

// A replacement whose key cannot be stored fails and changes nothing: the
// old context stays whole and usable, and no key or entry is left.
func TestForceReplaceThatFailsKeepsTheOld(t *testing.T) {
	ts := newTestStore(t)
	if _, _, err := ts.Create(opts(t, "prod")); err != nil {
		t.Fatal(err)
	}
	before := ts.ids(t)
	ts.keyring.FailSet(true)
	o := opts(t, "prod")
	o.Force, o.KeyStore = true, keystore.KindKeyring
	if _, _, err := ts.Create(o); err == nil || !strings.Contains(err.Error(), "store key "+KeyID("prod", o.Cert)) {
		t.Fatalf("create = %v", err)
	}
	usable(t, ts.Store, "prod")
	if got := ts.ids(t); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("keys %v, want %v", got, before)
	}
	assertClean(t, ts)
}

// crash runs the first steps of a change as Create would, then "dies":
// the lock is released (as the OS releases a dead process's flock) without
// the rest. steps says how far it got.
func crash(t *testing.T, ts *testStore, o CreateOptions, steps int) {
	t.Helper()
	release, err := ts.j.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	old, _ := ts.Get(o.Name)
	p := createPlan(o, old)
	e, err := ts.j.Begin(owner, "create", o.Name, p)
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := ts.keys.Open(p.New.Store, nil)
	for i, step := range []func() error{
		func() error { return ks.Put(p.New.ID, o.Key, true) },
		func() error { return e.Advance(phaseKeyStored) },
		func() error {
			pem, _ := pki.EncodePrivateKey(o.Key, nil)
			return ts.writeTLS(o.Name, map[string][]byte{CAFile: []byte(p.CAPEM), CertFile: []byte(p.CertPEM), KeyFile: pem})
		},
	} {
		if i == steps {
			return
		}
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
}

// After a crash at any step of create --force, the next command's lock
// leaves the old context whole (before the commit point) or the new one
// whole (after it), and exactly one key: never both, never none.
func TestCrashDuringReplaceIsRecovered(t *testing.T) {
	for steps, want := range []string{"old", "old", "new", "new"} {
		t.Run(fmt.Sprintf("after %d steps", steps), func(t *testing.T) {
			ts := newTestStore(t)
			first, _, err := ts.Create(opts(t, "prod"))
			if err != nil {
				t.Fatal(err)
			}
			o := opts(t, "prod")
			o.Force, o.KeyStore, o.Host = true, keystore.KindKeyring, "tcp://new:2376"
			crash(t, ts, o, steps)

			next := ts.reopen()
			release, err := next.j.Lock()
			if err != nil {
				t.Fatal(err)
			}
			release()
			c := usable(t, next, "prod")
			wantRef := first.KeyOf()
			if want == "new" {
				wantRef = keystore.Ref{Store: keystore.KindKeyring, ID: KeyID("prod", o.Cert)}
			}
			if c.KeyOf() != wantRef || (want == "new") != (c.Host == "tcp://new:2376") {
				t.Fatalf("context %+v, want the %s one", c.TLS, want)
			}
			if got := ts.ids(t); len(got) != 1 || got[0] != wantRef.String() {
				t.Fatalf("keys %v, want only %s", got, wantRef)
			}
			assertClean(t, ts)
		})
	}
}

func TestConcurrentCreatesOfOneName(t *testing.T) {
	ts := newTestStore(t)
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = ts.Create(opts(t, "same"))
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrExists):
			t.Error(err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d winners", wins)
	}
	usable(t, ts.Store, "same")
	if got := ts.ids(t); len(got) != 1 {
		t.Fatalf("keys %v", got)
	}
	assertClean(t, ts)
}

func TestRenew(t *testing.T) {
	ts := newTestStore(t)
	o := opts(t, "prod")
	was, _, err := ts.Create(o)
	if err != nil {
		t.Fatal(err)
	}
	// Same key: a new certificate only.
	cert, err := testCA.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "renewed", PublicKey: o.Key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ts.Renew(was, cert, o.Key, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.Subject != "CN=renewed" || c.KeyOf() != was.KeyOf() {
		t.Fatalf("after renew %+v", c.TLS)
	}
	if got, _ := ts.ReadFile("prod", CertFile); !bytes.Equal(got, pki.EncodeCertificate(cert)) {
		t.Fatal("cert.pem not replaced")
	}
	usable(t, ts.Store, "prod")

	// A new key, while the context is locked: it stays locked.
	if err := ts.Lock("prod"); err != nil {
		t.Fatal(err)
	}
	id := identity(t, "rekeyed")
	c2, err := ts.Renew(c, id.Cert, id.Key, true)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Locked() || c2.TLS.KeyID != KeyID("prod", id.Cert) {
		t.Fatalf("after rekey: %+v locked=%v", c2.TLS, c2.Locked())
	}
	if got := ts.ids(t); len(got) != 1 || got[0] != "file/"+c2.TLS.KeyID {
		t.Fatalf("keys after rekey: %v", got)
	}
	// A renewal prepared against the old key is refused: its certificate
	// would not match the key the context has now.
	if _, err := ts.Renew(c, cert, o.Key, false); err == nil || !strings.Contains(err.Error(), "changed by another docker tls command") {
		t.Fatalf("stale renew: %v", err)
	}
	if err := ts.Unlock("prod", false); err != nil {
		t.Fatal(err)
	}
	usable(t, ts.Store, "prod")
	assertClean(t, ts)
}

// Ten rekeys of one context at once: every one that succeeds retires the
// key before it, so one key is left and it is the context's.
func TestConcurrentRekeysLeaveNoOrphan(t *testing.T) {
	ts := newTestStore(t)
	was, _, err := ts.Create(opts(t, "prod"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := identity(t, "alice")
			if _, err := ts.Renew(was, id.Cert, id.Key, true); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	c := usable(t, ts.Store, "prod")
	if got := ts.ids(t); len(got) != 1 || got[0] != c.KeyOf().String() {
		t.Fatalf("keys %v, context uses %s", got, c.KeyOf())
	}
}

func TestMoveKeyAndBack(t *testing.T) {
	ts := newTestStore(t)
	if _, _, err := ts.Create(opts(t, "prod")); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		to    string
		moved bool
	}{{keystore.KindKeyring, true}, {keystore.KindKeyring, false}, {keystore.KindFile, true}} {
		moved, err := ts.MoveKey("prod", step.to)
		if err != nil {
			t.Fatal(err)
		}
		c := usable(t, ts.Store, "prod")
		if c.TLS.KeyStore != step.to || moved != step.moved {
			t.Fatalf("to %s: moved=%v store=%s", step.to, moved, c.TLS.KeyStore)
		}
		if got := ts.ids(t); len(got) != 1 || got[0] != c.KeyOf().String() {
			t.Fatalf("keys %v", got)
		}
	}
	if _, err := ts.MoveKey("prod", "vault"); err == nil || !strings.Contains(err.Error(), "use keyring or file") {
		t.Fatalf("unknown store: %v", err)
	}
	assertClean(t, ts)
}

// What verify reports and unlock --force repairs: a key.pem that is
// damaged or is another key.
func TestUnlockForceRepairsTheKeyFile(t *testing.T) {
	for name, content := range map[string]func(t *testing.T) []byte{
		"garbage": func(*testing.T) []byte { return []byte("not a key\n") },
		"foreign": func(t *testing.T) []byte { b, _ := pki.EncodePrivateKey(identity(t, "x").Key, nil); return b },
	} {
		t.Run(name, func(t *testing.T) {
			ts := newTestStore(t)
			c, _, err := ts.Create(opts(t, "prod"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(c.TLSDir, KeyFile), content(t), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := ts.CheckKeyFile(c); err == nil || !strings.Contains(err.Error(), "key.pem") {
				t.Fatalf("CheckKeyFile = %v", err)
			}
			var kf *KeyFileError
			if err := ts.Unlock("prod", false); !errors.As(err, &kf) || kf.Name != "prod" || !strings.Contains(err.Error(), "key.pem") {
				t.Fatalf("unlock = %v", err)
			}
			if err := ts.Unlock("prod", true); err != nil {
				t.Fatal(err)
			}
			usable(t, ts.Store, "prod")
		})
	}
}

// A context whose meta.json is damaged does not hide the others, is
// refused by Create without --force, and is removed with its keys.
func TestDamagedContext(t *testing.T) {
	ts := newTestStore(t)
	for _, n := range []string{"good", "bad"} {
		if _, _, err := ts.Create(opts(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	meta := filepath.Join(ts.s.GetStorageInfo("bad").MetadataPath, "meta.json")
	data, _ := os.ReadFile(meta)
	if err := os.WriteFile(meta, data[:len(data)/2], 0o644); err != nil { // torn, but still naming itself
		t.Fatal(err)
	}
	list, errs, err := ts.List()
	var damaged *DamagedError
	if err != nil || len(list) != 1 || list[0].Name != "good" || !errors.As(errs["bad"], &damaged) || damaged.Name != "bad" || damaged.Replace {
		t.Fatalf("list %v %v %v", list, errs, err)
	}
	if _, _, err := ts.Create(opts(t, "bad")); !errors.As(err, &damaged) || !damaged.Replace {
		t.Fatalf("create over a damaged context: %v", err)
	}
	if _, err := ts.Remove("bad"); err != nil {
		t.Fatal(err)
	}
	if got := ts.ids(t); len(got) != 1 || !strings.HasPrefix(got[0], "file/ctx-good-") {
		t.Fatalf("keys %v", got)
	}
	if list, errs, _ := ts.List(); len(list) != 1 || len(errs) != 0 {
		t.Fatalf("after rm: %v %v", list, errs)
	}
	// Garbage that names nothing is reported by its file.
	if err := os.WriteFile(filepath.Join(ts.s.GetStorageInfo("good").MetadataPath, "meta.json"), []byte("\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if list, errs, _ := ts.List(); len(list) != 0 || len(errs) != 1 {
		t.Fatalf("garbage: %v %v", list, errs)
	} else {
		for k, err := range errs {
			if !strings.HasSuffix(k, "meta.json") || !strings.Contains(err.Error(), "names no context") {
				t.Fatalf("%s: %v", k, err)
			}
		}
	}
}

func TestToAgent(t *testing.T) {
	ts := newTestStore(t)
	was, _, err := ts.Create(opts(t, "prod"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ts.ToAgent("prod", "/run/agent/prod.sock")
	if err != nil {
		t.Fatal(err)
	}
	if !c.AgentMode() || c.Host != "unix:///run/agent/prod.sock" || c.TLS.Remote != was.Host || len(c.Files) != 0 || c.TLS.CertPEM == "" || c.KeyOf() != was.KeyOf() {
		t.Fatalf("agent context %+v files %v", c.TLS, c.Files)
	}
	if _, err := os.Stat(was.TLSDir); !os.IsNotExist(err) {
		t.Fatalf("TLS dir left: %v", err)
	}
	if err := ts.Lock("prod"); err == nil || !strings.Contains(err.Error(), "agent mode") {
		t.Fatalf("lock in agent mode: %v", err)
	}
	id := identity(t, "alice")
	c2, err := ts.Renew(c, id.Cert, id.Key, true)
	if err != nil {
		t.Fatal(err)
	}
	if c2.TLS.CertPEM != string(pki.EncodeCertificate(id.Cert)) || len(c2.Files) != 0 {
		t.Fatalf("renewed agent context %+v", c2.TLS)
	}
	if got := ts.ids(t); len(got) != 1 || got[0] != c2.KeyOf().String() {
		t.Fatalf("keys %v", got)
	}
	assertClean(t, ts)
}

// TestRetrust: the steps of a CA rotation on one context: trust a bundle,
// take a certificate from the new CA for the same key, trust the new CA
// alone; a certificate for another key is refused and changes nothing.
func TestRetrust(t *testing.T) {
	ts := newTestStore(t)
	o := opts(t, "prod")
	was, _, err := ts.Create(o)
	if err != nil {
		t.Fatal(err)
	}
	nk, _ := pki.GenerateKey(pki.ECDSAP256)
	next, err := pki.NewCA(nk, pki.CAOptions{CommonName: "next CA"})
	if err != nil {
		t.Fatal(err)
	}
	bundle := append(pki.EncodeCertificate(testCA.Cert), pki.EncodeCertificate(next.Cert)...)
	c, err := ts.Retrust(was, bundle, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := ts.ReadFile("prod", CAFile); !bytes.Equal(got, bundle) {
		t.Fatalf("ca.pem is not the bundle:\n%s", got)
	}
	usable(t, ts.Store, "prod")

	stranger, _ := pki.GenerateKey(pki.ECDSAP256)
	wrong, _ := next.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "x", PublicKey: stranger.Public()})
	if _, err := ts.Retrust(c, bundle, wrong); err == nil {
		t.Fatal("a certificate for another key was accepted")
	}
	cert, _ := next.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "prod", PublicKey: o.Key.Public()})
	if c, err = ts.Retrust(c, bundle, cert); err != nil {
		t.Fatal(err)
	}
	if c.TLS.Issuer != "CN=next CA" || c.KeyOf() != was.KeyOf() {
		t.Fatalf("after the re-issue: %+v", c.TLS)
	}
	if c, err = ts.Retrust(c, pki.EncodeCertificate(next.Cert), nil); err != nil {
		t.Fatal(err)
	}
	if c.TLS.CAFingerprint != pki.Fingerprint(next.Cert) {
		t.Fatalf("fingerprint after retiring the old CA: %s", c.TLS.CAFingerprint)
	}
	if got, _ := ts.ReadFile("prod", CertFile); !bytes.Equal(got, pki.EncodeCertificate(cert)) {
		t.Fatal("cert.pem lost")
	}
	usable(t, ts.Store, "prod")
}

// TestRefreshTokenFollowsTheKey: a sign-in's refresh token is kept with
// the context's key, follows it to another store and to a new key, is
// replaced when the provider rotates it, goes when the context goes, and
// never reaches the journal or the context's files.
func TestRefreshTokenFollowsTheKey(t *testing.T) {
	ts := newTestStore(t)
	const tok = "refresh-token-secret-1"
	o := opts(t, "team")
	o.RefreshToken, o.SignIn = tok, true
	c, _, err := ts.Create(o)
	if err != nil {
		t.Fatal(err)
	}
	if got := ts.RefreshToken(c); got != tok {
		t.Fatalf("after create: %q", got)
	}
	if _, err := ts.MoveKey("team", keystore.KindKeyring); err != nil {
		t.Fatal(err)
	}
	c = usable(t, ts.Store, "team")
	if got := ts.RefreshToken(c); got != tok || c.TLS.KeyStore != keystore.KindKeyring {
		t.Fatalf("after the move to %s: %q", c.TLS.KeyStore, got)
	}
	// A rekey: the new key's entry carries the token.
	next := identity(t, "alice")
	if c, err = ts.Renew(c, next.Cert, next.Key, true); err != nil {
		t.Fatal(err)
	}
	if got := ts.RefreshToken(c); got != tok {
		t.Fatalf("after a rekey: %q", got)
	}
	if err := ts.KeepRefreshToken(c, next.Key, "refresh-token-secret-2"); err != nil {
		t.Fatal(err)
	}
	if got := ts.RefreshToken(c); got != "refresh-token-secret-2" {
		t.Fatalf("after the provider rotated it: %q", got)
	}
	// A stale read does not write.
	other := identity(t, "alice")
	if _, err := ts.Renew(c, other.Cert, other.Key, true); err != nil {
		t.Fatal(err)
	}
	if err := ts.KeepRefreshToken(c, next.Key, "stale"); err == nil {
		t.Fatal("a token was kept for a key the context no longer uses")
	}
	if strings.Contains(snapshotDir(t, ts.dir), "refresh-token-secret") {
		t.Fatal("a refresh token is in a file outside the key store's entries")
	}
	if _, err := ts.Remove("team"); err != nil {
		t.Fatal(err)
	}
	if got := ts.ids(t); len(got) != 0 {
		t.Fatalf("keys left: %v", got)
	}
	assertClean(t, ts)
}

// snapshotDir is every file under dir with its content, for a search.
func snapshotDir(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		b.WriteString(path + "\n" + string(data) + "\n")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
