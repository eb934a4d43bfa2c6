package keystore

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	gokeyring "github.com/zalando/go-keyring"

	"github.com/docker-tls/docker-tls/internal/crashpoint"
	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
)

// Service is the keyring service name every docker-tls entry is stored under.
const Service = "docker-tls"

// DefaultTimeout bounds every keyring call: go-keyring has no timeout of its
// own, and a locked keyring waiting on a prompt can block forever.
const DefaultTimeout = 10 * time.Second

// ErrKeyringTimeout is returned when the OS keyring does not answer in time.
var ErrKeyringTimeout = errors.New("the OS keyring did not answer in time (is it locked?)")

// ErrKeyringUnavailable wraps failures to reach the OS keyring at all.
var ErrKeyringUnavailable = errors.New("the OS keyring is not available")

// Backend is the part of go-keyring a Keyring uses; tests substitute a map.
type Backend interface {
	Set(service, user, secret string) error
	Get(service, user string) (string, error)
	Delete(service, user string) error
}

// OSBackend is the real OS keyring through go-keyring: macOS Keychain,
// Windows Credential Manager, Secret Service on Linux and the BSDs.
type OSBackend struct{}

func (OSBackend) Set(service, user, secret string) error   { return gokeyring.Set(service, user, secret) }
func (OSBackend) Get(service, user string) (string, error) { return gokeyring.Get(service, user) }
func (OSBackend) Delete(service, user string) error        { return gokeyring.Delete(service, user) }

// Keyring keeps each key as one entry (service "docker-tls", user = id) in
// the OS keyring. Keyrings cannot list entries portably, so the ids are also
// recorded, without any secret, in an index file next to the file store.
type Keyring struct {
	Backend Backend
	// IndexPath is the JSON list of ids this store holds.
	IndexPath string
	// Timeout bounds each keyring call; DefaultTimeout if zero.
	Timeout time.Duration
	// MaxSecret is the largest entry the platform accepts (Windows
	// Credential Manager: 2560 bytes; macOS Keychain: about 3000 bytes with
	// service and account). Zero means no limit (Secret Service).
	MaxSecret int
}

// NewKeyring returns the OS keyring store with its index under dir.
func NewKeyring(dir string) *Keyring {
	return &Keyring{Backend: OSBackend{}, IndexPath: filepath.Join(dir, "keyring-index.json"), MaxSecret: platformMaxSecret()}
}

// Kind implements Store.
func (k *Keyring) Kind() string { return KindKeyring }

// call runs f under the store's timeout. The goroutine of a timed-out call
// is abandoned: there is no way to cancel a blocked D-Bus or Keychain call.
func (k *Keyring) call(f func() error) error {
	timeout := k.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("%w: no answer in %s", ErrKeyringTimeout, timeout)
	}
}

func (k *Keyring) wrap(op, id string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gokeyring.ErrNotFound), vanished(err):
		return fmt.Errorf("key %s: %w", id, ErrNotFound)
	case errors.Is(err, ErrKeyringTimeout):
		return fmt.Errorf("%s key %s: %w", op, id, err)
	case errors.Is(err, gokeyring.ErrSetDataTooBig):
		return fmt.Errorf("%s key %s: %w", op, id, ErrKeyTooLarge)
	}
	return fmt.Errorf("%s key %s: %w: %s", op, id, ErrKeyringUnavailable, unavailableReason(err))
}

// vanished says that a Secret Service item was deleted (by another
// process) between go-keyring's search for it and its read: the Secret
// Service then answers that the item's object path is gone.
// That is a key not found, not a keyring that is unavailable.
func vanished(err error) bool {
	// gnome-keyring says it either way, depending on how far the deletion
	// got: the item's path has no Item interface, or no object at all.
	msg := err.Error()
	return strings.Contains(msg, "/org/freedesktop/secrets/collection/") &&
		(strings.Contains(msg, "No such interface") || strings.Contains(msg, "does not exist") || strings.Contains(msg, "No such object"))
}

// readyProbe is the id Ready looks up; no key is ever stored under it.
const readyProbe = "docker-tls-ready-probe"

// Ready checks that the keyring answers, by looking up an id no key has.
// A change that puts a key records its intent first; checked before that,
// a keyring that cannot be reached leaves no record whose undo would need
// the keyring, and so block every later command until it came back.
func (k *Keyring) Ready() error {
	err := k.call(func() error {
		_, err := k.Backend.Get(Service, readyProbe)
		return err
	})
	switch {
	case err == nil, errors.Is(err, gokeyring.ErrNotFound), vanished(err):
		return nil
	case errors.Is(err, ErrKeyringTimeout):
		return err
	}
	return fmt.Errorf("%w: %s", ErrKeyringUnavailable, unavailableReason(err))
}

// unavailableReason explains the common Linux case in words: godbus reports
// a missing session bus as a failure to run dbus-launch.
func unavailableReason(err error) string {
	if runtime.GOOS == "linux" && os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		return "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset), so no Secret Service"
	}
	return err.Error()
}

// Put implements Store.
func (k *Keyring) Put(id string, key crypto.Signer, overwrite bool) error {
	return k.PutWithToken(id, key, "", overwrite)
}

// PutWithToken implements Store: the token follows the key in the same
// keyring entry.
func (k *Keyring) PutWithToken(id string, key crypto.Signer, token string, overwrite bool) error {
	if err := CheckID(id); err != nil {
		return err
	}
	secret, err := k.entry(id, key, token)
	if err != nil {
		return err
	}
	// The index names the id before the entry exists: a process killed in
	// between leaves an index entry without a secret (which prune drops),
	// never a secret that no command can see.
	return k.withIndex(func(ids []string) ([]string, error) {
		if !overwrite {
			if err := k.absent(id); err != nil {
				return nil, err
			}
		}
		listed := slices.Contains(ids, id)
		if !listed {
			if err := k.writeIndex(append(slices.Clone(ids), id)); err != nil {
				return nil, err
			}
			crashpoint.Hit("keyring-put:indexed")
		}
		if err := k.call(func() error { return k.Backend.Set(Service, id, secret) }); err != nil {
			if listed {
				return nil, k.wrap("store", id, err)
			}
			return ids, k.wrap("store", id, err) // the intent is withdrawn
		}
		return append(ids, id), nil
	})
}

// entry is the keyring secret for key and token, if it fits.
func (k *Keyring) entry(id string, key crypto.Signer, token string) (string, error) {
	secret, err := encodeKeyringSecret(key)
	if err != nil {
		return "", err
	}
	fits := func() bool { return k.MaxSecret <= 0 || len(secret)+len(Service)+len(id) <= k.MaxSecret }
	if token != "" {
		secret += tokenSeparator + base64.StdEncoding.EncodeToString([]byte(token))
		if !fits() {
			return "", fmt.Errorf("key %s with the identity provider's refresh token does not fit in this OS keyring (%d bytes, limit %d): %w", id, len(secret), k.MaxSecret, ErrTokenTooLarge)
		}
	}
	if !fits() {
		return "", fmt.Errorf("key %s (%s, %d bytes, limit %d): %w", id, pki.DescribeKey(key.Public()), len(secret), k.MaxSecret, ErrKeyTooLarge)
	}
	return secret, nil
}

// absent says the keyring has no entry id (ErrExists if it has).
func (k *Keyring) absent(id string) error {
	err := k.call(func() error { _, err := k.Backend.Get(Service, id); return err })
	switch {
	case err == nil:
		return fmt.Errorf("key %s: %w", id, ErrExists)
	case !errors.Is(err, gokeyring.ErrNotFound):
		return k.wrap("store", id, err)
	}
	return nil
}

// tokenSeparator ends the key in an entry that also holds a refresh
// token: "KEY\nrefresh-token:BASE64".
const tokenSeparator = "\nrefresh-token:"

// Get implements Store.
func (k *Keyring) Get(id string) (crypto.Signer, error) {
	secret, err := k.secret(id)
	if err != nil {
		return nil, err
	}
	keyPart, _, _ := strings.Cut(secret, tokenSeparator)
	key, err := decodeKeyringSecret(keyPart)
	if err != nil {
		return nil, fmt.Errorf("key %s in the OS keyring: %w", id, err)
	}
	return key, nil
}

// Token implements Store.
func (k *Keyring) Token(id string) (string, error) {
	secret, err := k.secret(id)
	if err != nil {
		return "", err
	}
	_, enc, ok := strings.Cut(secret, tokenSeparator)
	if !ok {
		return "", nil
	}
	tok, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", fmt.Errorf("key %s in the OS keyring: its refresh token is not valid base64", id)
	}
	return string(tok), nil
}

// secret reads id's entry.
func (k *Keyring) secret(id string) (string, error) {
	if err := CheckID(id); err != nil {
		return "", err
	}
	var secret string
	err := k.call(func() error {
		var err error
		secret, err = k.Backend.Get(Service, id)
		return err
	})
	if err != nil {
		return "", k.wrap("read", id, err)
	}
	return secret, nil
}

// Delete implements Store.
func (k *Keyring) Delete(id string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	return k.withIndex(func(ids []string) ([]string, error) {
		err := k.call(func() error { return k.Backend.Delete(Service, id) })
		ids = slices.DeleteFunc(ids, func(s string) bool { return s == id })
		if err != nil {
			if errors.Is(err, gokeyring.ErrNotFound) {
				// Keep the index honest even when the entry was removed by hand.
				return ids, fmt.Errorf("key %s: %w", id, ErrNotFound)
			}
			return nil, k.wrap("delete", id, err)
		}
		return ids, nil
	})
}

// List implements Store, from the index.
func (k *Keyring) List(prefix string) ([]string, error) {
	ids, err := k.readIndex()
	if err != nil {
		return nil, err
	}
	ids = slices.DeleteFunc(ids, func(s string) bool { return !strings.HasPrefix(s, prefix) })
	slices.Sort(ids)
	return ids, nil
}

func (k *Keyring) readIndex() ([]string, error) {
	data, err := os.ReadFile(k.IndexPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read keyring index: %w", err)
	}
	var ids []string
	if err := json.Unmarshal(data, &ids); err != nil {
		return nil, fmt.Errorf("%w: %s (%v)", ErrIndexDamaged, k.IndexPath, err)
	}
	return ids, nil
}

// ErrIndexDamaged is returned when the keyring's index cannot be read.
var ErrIndexDamaged = errors.New("the keyring index is damaged")

// ErrKeyTooLarge is returned when a key does not fit in the OS keyring's
// entry (an RSA key in Windows' Credential Manager, say).
var ErrKeyTooLarge = errors.New("it does not fit in this OS keyring")

// RebuildIndex replaces a damaged index with ids (the keys that CAs and
// contexts record in the keyring), keeping the damaged file beside it.
func (k *Keyring) RebuildIndex(ids []string) error {
	if err := fsutil.MkdirPrivate(filepath.Dir(k.IndexPath)); err != nil {
		return err
	}
	release, err := fsutil.Lock(k.IndexPath+".lock", 30*time.Second)
	if err != nil {
		return err
	}
	defer release()
	if _, err := k.readIndex(); err == nil {
		return nil // not damaged (any more)
	}
	if err := os.Rename(k.IndexPath, k.IndexPath+".damaged-"+time.Now().UTC().Format("20060102T150405")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return k.writeIndex(ids)
}

// withIndex runs f with the index locked and writes back the ids it returns
// (unless it returns nil ids with an error). The lock serialises concurrent
// docker-tls processes.
func (k *Keyring) withIndex(f func([]string) ([]string, error)) error {
	if err := fsutil.MkdirPrivate(filepath.Dir(k.IndexPath)); err != nil {
		return err
	}
	release, err := fsutil.Lock(k.IndexPath+".lock", 30*time.Second)
	if err != nil {
		return err
	}
	defer release()
	ids, err := k.readIndex()
	if err != nil {
		return err
	}
	next, ferr := f(ids)
	if next == nil && ferr != nil {
		return ferr
	}
	if err := k.writeIndex(next); err != nil {
		return err
	}
	return ferr
}

func (k *Keyring) writeIndex(ids []string) error {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	data, err := json.Marshal(slices.Compact(ids))
	if err != nil {
		return err
	}
	// Staged in the store's scratch directory, which the state lock
	// empties, so a killed write leaves nothing in the keys directory.
	tmp := tempDir(filepath.Dir(k.IndexPath))
	if err := fsutil.MkdirPrivate(tmp); err != nil {
		return err
	}
	return fsutil.WriteFileVia(tmp, k.IndexPath, append(data, '\n'), fsutil.PrivateFile, true)
}

// Keyring entries are text. Most keys are stored as "pkcs8:" + base64 of
// PKCS#8 DER. An RSA key whose PKCS#8 form would not fit the Windows (2560
// bytes) or macOS (~3000 bytes) limits is stored as "rsa-primes:" + base64
// of DER SEQUENCE{e, p, q}, from which the rest of the key is recomputed:
// an RSA-4096 key takes about 700 bytes that way instead of 3200.
const (
	prefixPKCS8     = "pkcs8:"
	prefixRSAPrimes = "rsa-primes:"
	compactAbove    = 2400
)

type rsaPrimes struct {
	E, P, Q *big.Int
}

func encodeKeyringSecret(key crypto.Signer) (string, error) {
	der, err := pki.MarshalPrivateKeyDER(key)
	if err != nil {
		return "", err
	}
	s := prefixPKCS8 + base64.StdEncoding.EncodeToString(der)
	if rk, ok := key.(*rsa.PrivateKey); ok && len(s) > compactAbove && len(rk.Primes) == 2 {
		der, err := asn1.Marshal(rsaPrimes{E: big.NewInt(int64(rk.E)), P: rk.Primes[0], Q: rk.Primes[1]})
		if err != nil {
			return "", fmt.Errorf("encode RSA key: %w", err)
		}
		s = prefixRSAPrimes + base64.StdEncoding.EncodeToString(der)
	}
	return s, nil
}

func decodeKeyringSecret(s string) (crypto.Signer, error) {
	switch {
	case strings.HasPrefix(s, prefixPKCS8):
		der, err := base64.StdEncoding.DecodeString(s[len(prefixPKCS8):])
		if err != nil {
			return nil, errors.New("the entry is not valid base64")
		}
		return pki.ParsePrivateKey(der, nil)
	case strings.HasPrefix(s, prefixRSAPrimes):
		der, err := base64.StdEncoding.DecodeString(s[len(prefixRSAPrimes):])
		if err != nil {
			return nil, errors.New("the entry is not valid base64")
		}
		var p rsaPrimes
		if rest, err := asn1.Unmarshal(der, &p); err != nil || len(rest) > 0 {
			return nil, errors.New("the RSA entry is malformed")
		}
		return rsaFromPrimes(p)
	}
	return nil, errors.New("the entry was not written by docker-tls")
}

// rsaFromPrimes rebuilds a full RSA private key from e, p and q.
func rsaFromPrimes(p rsaPrimes) (*rsa.PrivateKey, error) {
	if p.E == nil || p.P == nil || p.Q == nil || !p.E.IsInt64() || p.P.Sign() <= 0 || p.Q.Sign() <= 0 {
		return nil, errors.New("the RSA entry is malformed")
	}
	one := big.NewInt(1)
	pm1 := new(big.Int).Sub(p.P, one)
	qm1 := new(big.Int).Sub(p.Q, one)
	phi := new(big.Int).Mul(pm1, qm1)
	d := new(big.Int).ModInverse(p.E, phi)
	if d == nil {
		return nil, errors.New("the RSA entry is inconsistent")
	}
	key := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p.P, p.Q), E: int(p.E.Int64())},
		D:         d,
		Primes:    []*big.Int{p.P, p.Q},
	}
	if err := key.Validate(); err != nil {
		return nil, fmt.Errorf("the RSA entry is inconsistent: %w", err)
	}
	key.Precompute()
	// Round-trip through PKCS#1 so the key is in Go's canonical form.
	back, err := x509.ParsePKCS1PrivateKey(x509.MarshalPKCS1PrivateKey(key))
	if err != nil {
		return nil, fmt.Errorf("the RSA entry is inconsistent: %w", err)
	}
	return back, nil
}
