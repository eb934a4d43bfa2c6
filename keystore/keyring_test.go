package keystore

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gokeyring "github.com/zalando/go-keyring"

	"github.com/docker-tls/docker-tls/internal/keyringtest"
	"github.com/docker-tls/docker-tls/pki"
)

// mapBackend is an in-memory keyring for unit tests; the real Secret
// Service is exercised in keyring_os_test.go.
type mapBackend struct {
	mu    sync.Mutex
	m     map[string]string
	block chan struct{} // if set, every call waits on it
}

func (b *mapBackend) wait() {
	if b.block != nil {
		<-b.block
	}
}

func (b *mapBackend) Set(s, u, p string) error {
	b.wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[s+"/"+u] = p
	return nil
}

func (b *mapBackend) Get(s, u string) (string, error) {
	b.wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[s+"/"+u]
	if !ok {
		return "", gokeyring.ErrNotFound
	}
	return v, nil
}

func (b *mapBackend) Delete(s, u string) error {
	b.wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[s+"/"+u]; !ok {
		return gokeyring.ErrNotFound
	}
	delete(b.m, s+"/"+u)
	return nil
}

func newTestKeyring(t *testing.T) (*Keyring, *mapBackend) {
	b := &mapBackend{m: map[string]string{}}
	return &Keyring{Backend: b, IndexPath: filepath.Join(t.TempDir(), "keys", "keyring-index.json")}, b
}

func TestKeyringStore(t *testing.T) {
	k, b := newTestKeyring(t)
	var _ Store = k
	testStoreContract(t, k)
	for key, v := range b.m {
		if strings.Contains(v, "PRIVATE KEY") || !strings.HasPrefix(v, "pkcs8:") {
			t.Errorf("entry %s is not base64 PKCS#8: %.20q", key, v)
		}
	}
}

// testStoreContract is what every Store must do.
func testStoreContract(t *testing.T, s Store) {
	t.Helper()
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	other, _ := pki.GenerateKey(pki.Ed25519)
	id := "test-" + strings.ReplaceAll(t.Name(), "/", "-")
	if err := s.Put(id, key, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(id, other, false); !errors.Is(err, ErrExists) {
		t.Fatalf("second put: %v", err)
	}
	got, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
		t.Fatal("different key back (or overwritten without asking)")
	}
	if err := s.Put(id, other, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(id); !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(other.Public()) {
		t.Fatal("overwrite did not replace the key")
	}
	// A refresh token rides with its key: written, read back and
	// replaced with it; a key put without one has none.
	if tok, err := s.Token(id); err != nil || tok != "" {
		t.Fatalf("token of a key stored without one: %q, %v", tok, err)
	}
	const token = "rt-1.eyJhbGciOi/+=" // any bytes a provider may send
	if err := s.PutWithToken(id, other, token, false); !errors.Is(err, ErrExists) {
		t.Fatalf("put with token over a key: %v", err)
	}
	if err := s.PutWithToken(id, other, token, true); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.Token(id); err != nil || tok != token {
		t.Fatalf("token back: %q, %v", tok, err)
	}
	if got, err := s.Get(id); err != nil || !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(other.Public()) {
		t.Fatalf("the key beside a token: %v", err)
	}
	if err := s.Put(id, other, true); err != nil {
		t.Fatal(err)
	}
	if tok, _ := s.Token(id); tok != "" {
		t.Fatalf("a key put again without its token kept it: %q", tok)
	}
	if _, err := s.Token("test-none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token of no key: %v", err)
	}
	ids, err := s.List("test-")
	if err != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("List = %v, %v", ids, err)
	}
	if err := s.Delete(id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := s.Delete(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if ids, _ := s.List("test-"); len(ids) != 0 {
		t.Fatalf("List after delete = %v", ids)
	}
}

func TestKeyringTimeout(t *testing.T) {
	k, b := newTestKeyring(t)
	b.block = make(chan struct{})
	defer close(b.block)
	k.Timeout = 50 * time.Millisecond
	start := time.Now()
	_, err := k.Get("ca-x")
	if !errors.Is(err, ErrKeyringTimeout) || !strings.Contains(err.Error(), "is it locked") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("timeout not honoured")
	}
}

func TestKeyringRSA4096FitsPlatformLimits(t *testing.T) {
	k, b := newTestKeyring(t)
	k.MaxSecret = 2560 // Windows Credential Manager
	key, err := pki.GenerateKey(pki.RSA4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Put("big", key, false); err != nil {
		t.Fatal(err)
	}
	v := b.m[Service+"/big"]
	if !strings.HasPrefix(v, prefixRSAPrimes) || len(v) > 1000 {
		t.Fatalf("RSA-4096 entry is %d bytes (%.12s…)", len(v), v)
	}
	got, err := k.Get("big")
	if err != nil {
		t.Fatal(err)
	}
	rk := got.(*rsa.PrivateKey)
	if !rk.PublicKey.Equal(key.Public()) || rk.D == nil || rk.Precomputed.Dp == nil {
		t.Fatal("RSA key not rebuilt")
	}
	// It signs like the original.
	ca, err := pki.NewCA(got, pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Cert.CheckSignatureFrom(ca.Cert); err != nil {
		t.Fatal(err)
	}
	// Something genuinely too large is refused as such (plugin's hint
	// adds the way out).
	k.MaxSecret = 100
	small, _ := pki.GenerateKey(pki.ECDSAP384)
	if err := k.Put("p384", small, false); !errors.Is(err, ErrKeyTooLarge) || !strings.Contains(err.Error(), "key p384 (ECDSA P-384, 254 bytes, limit 100)") {
		t.Fatalf("oversized entry: %v", err)
	}
}

func TestKeyringRejectsForeignEntries(t *testing.T) {
	k, b := newTestKeyring(t)
	b.m[Service+"/x"] = "hunter2"
	if _, err := k.Get("x"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
	b.m[Service+"/y"] = prefixRSAPrimes + "MAA="
	if _, err := k.Get("y"); err == nil {
		t.Fatal("malformed RSA entry accepted")
	}
}

func TestKeyringConcurrentPutsKeepIndex(t *testing.T) {
	k, _ := newTestKeyring(t)
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := k.Put("k"+string(rune('a'+i)), key, false); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	ids, _ := k.List("k")
	if len(ids) != 20 {
		t.Fatalf("index has %d ids, want 20: %v", len(ids), ids)
	}
}

func mustSelfSigned(t *testing.T, key crypto.Signer) *x509.Certificate {
	t.Helper()
	ca, err := pki.NewCA(key, pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ca.Cert
}

func TestVanishedItemIsNotFound(t *testing.T) {
	k := &Keyring{}
	// What the Secret Service answers when another process deleted the
	// item between go-keyring's search and its read.
	for _, msg := range []string{
		`No such interface “org.freedesktop.Secret.Item” on object at path /org/freedesktop/secrets/collection/login/10`,
		`Object does not exist at path “/org/freedesktop/secrets/collection/login/28”`,
	} {
		err := k.wrap("read", "ctx-a-1", errors.New(msg))
		if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrKeyringUnavailable) {
			t.Errorf("a vanished item: %v", err)
		}
	}
	if err := k.wrap("read", "ctx-a-1", errors.New("The name org.freedesktop.secrets was not provided by any .service files")); !errors.Is(err, ErrKeyringUnavailable) {
		t.Errorf("no Secret Service: %v", err)
	}
}

// TestKeyringTokenTooLarge: a key that fits but not with its refresh
// token is refused as ErrTokenTooLarge, with nothing written, so that the
// caller can keep the key alone.
func TestKeyringTokenTooLarge(t *testing.T) {
	k, _ := newTestKeyring(t)
	k.MaxSecret = 2560 // Windows Credential Manager
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	err := k.PutWithToken("ctx-1", key, strings.Repeat("t", 3000), false)
	if !errors.Is(err, ErrTokenTooLarge) {
		t.Fatalf("a token too large: %v", err)
	}
	if _, err := k.Get("ctx-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("something was written: %v", err)
	}
	if err := k.PutWithToken("ctx-1", key, strings.Repeat("t", 1000), false); err != nil {
		t.Fatalf("a token that fits: %v", err)
	}
}

func TestKeyringReady(t *testing.T) {
	k, _ := newTestKeyring(t)
	if err := k.Ready(); err != nil {
		t.Fatalf("Ready on an answering keyring: %v", err)
	}
	kr := keyringtest.New()
	kr.Unreachable(true)
	k.Backend = kr
	if err := k.Ready(); !errors.Is(err, ErrKeyringUnavailable) {
		t.Fatalf("Ready on an unreachable keyring = %v, want ErrKeyringUnavailable", err)
	}
	if err := (Stores{Dir: t.TempDir(), Backend: kr}).Ready(KindFile); err != nil {
		t.Fatalf("the file store is not ready while the keyring is unreachable: %v", err)
	}
	k.Timeout = 50 * time.Millisecond
	k.Backend = &mapBackend{m: map[string]string{}, block: make(chan struct{})}
	if err := k.Ready(); !errors.Is(err, ErrKeyringTimeout) {
		t.Fatalf("Ready on a keyring that does not answer = %v, want ErrKeyringTimeout", err)
	}
}
