package keystore

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// requireOSKeyring skips unless a real OS keyring answers; with
// DOCKER_TLS_TEST_REQUIRE_KEYRING=1 (set in CI) it fails instead, so CI can
// never skip the keyring tests quietly.
func requireOSKeyring(t *testing.T) *Keyring {
	t.Helper()
	k := NewKeyring(t.TempDir())
	k.Timeout = 5 * time.Second
	probe := fmt.Sprintf("probe-%d", time.Now().UnixNano())
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	err := k.Put(probe, key, false)
	if err == nil {
		err = k.Delete(probe)
	}
	if err != nil {
		msg := fmt.Sprintf("no usable OS keyring (%v); on Linux run the tests under scripts/with-keyring.sh (needs dbus and gnome-keyring)", err)
		if os.Getenv("DOCKER_TLS_TEST_REQUIRE_KEYRING") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return k
}

// TestOSKeyring runs the Store contract against the real OS keyring (a
// gnome-keyring Secret Service under dbus-run-session in CI).
func TestOSKeyring(t *testing.T) {
	k := requireOSKeyring(t)
	testStoreContract(t, k)

	// RSA-4096 round-trips through the real keyring too.
	big, err := pki.GenerateKey(pki.RSA4096)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("rsa4096-%d", time.Now().UnixNano())
	if err := k.Put(id, big, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Delete(id) })
	got, err := k.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.CheckKeyMatch(mustSelfSigned(t, big), got); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(k.IndexPath)); err != nil {
		t.Fatal(err)
	}
}
