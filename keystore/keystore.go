// Package keystore owns where docker-tls keeps private keys: one interface,
// Store, with a file implementation (0600 PEM files, optionally
// passphrase-encrypted PKCS#8) and, next to it, the OS keyring. Callers pick a
// store by kind through Stores and never learn how it keeps a key.
//
// Both stores can say which ids they hold without reading a secret: the file
// store by its directory, the keyring by an index file written before the
// entry itself, so that no keyring entry ever exists that the index does not
// name. The stores do not know who owns a key; the CA and context stores
// record that, and a key that nobody records is an orphan that
// `docker tls keys prune` removes.
package keystore

import (
	"crypto"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// ErrNotFound is returned by Get and Delete for an unknown id.
var ErrNotFound = errors.New("no such key in the key store")

// The kinds of key store, as users select them with --keystore.
const (
	KindKeyring = "keyring"
	KindFile    = "file"
)

// Kinds lists the key store kinds with a line of help each, in the order
// help texts and shell completion show them.
func Kinds() [][2]string {
	return [][2]string{
		{KindKeyring, "the OS keyring (macOS Keychain, Windows Credential Manager, Secret Service)"},
		{KindFile, "0600 PEM files under $DOCKER_CONFIG/tls/keys"},
	}
}

// KindNames is Kinds without the help.
func KindNames() []string {
	var out []string
	for _, k := range Kinds() {
		out = append(out, k[0])
	}
	return out
}

// CheckKind says which kinds exist when kind is none of them.
func CheckKind(kind string) error {
	for _, k := range KindNames() {
		if kind == k {
			return nil
		}
	}
	return fmt.Errorf("unknown key store %q: use %s", kind, strings.Join(KindNames(), " or "))
}

// Stores opens the key stores kept under one directory
// ($DOCKER_CONFIG/tls/keys): the file store's keys and the keyring's index.
type Stores struct {
	Dir string
	// Backend replaces the OS keyring when set (unit tests).
	Backend Backend
	// Timeout bounds each keyring call; DefaultTimeout if zero.
	Timeout time.Duration
}

// Open returns the store of a kind. passphrase encrypts keys the file store
// writes and opens encrypted ones; the keyring ignores it.
func (s Stores) Open(kind string, passphrase []byte) (Store, error) {
	switch kind {
	case KindFile:
		return &File{Dir: s.Dir, Passphrase: passphrase}, nil
	case KindKeyring:
		return s.Keyring(), nil
	}
	return nil, CheckKind(kind)
}

// Ready checks, before a change records its intent to put a key into the
// store of kind, that the store can take it now: the keyring answers
// (Keyring.Ready); the file store always can.
func (s Stores) Ready(kind string) error {
	if kind == KindKeyring {
		return s.Keyring().Ready()
	}
	return CheckKind(kind)
}

// Keyring is the keyring store, for what only it has (its index).
func (s Stores) Keyring() *Keyring {
	k := NewKeyring(s.Dir)
	if s.Backend != nil {
		k.Backend = s.Backend
	}
	k.Timeout = s.Timeout
	return k
}

// TempDir is where the file store stages a key before renaming it into
// place: a 0700 directory of its own, so what a killed write leaves is
// found and removed in one place (journal.New takes it as scratch).
func (s Stores) TempDir() string { return tempDir(s.Dir) }

func tempDir(dir string) string { return filepath.Join(dir, ".tmp") }

// Ref names a key: the kind of store that holds it and its id there.
type Ref struct {
	Store string `json:"store"`
	ID    string `json:"id"`
}

func (r Ref) String() string { return r.Store + "/" + r.ID }

// Delete removes the key r names; a key already gone is not an error.
func (s Stores) Delete(r Ref) error {
	ks, err := s.Open(r.Store, nil)
	if err != nil {
		return err
	}
	if err := ks.Delete(r.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// ErrTokenTooLarge is returned by PutWithToken when the key fits in the
// store but not with the token (Windows' Credential Manager takes 2,560
// bytes an entry): the caller may keep the key alone.
var ErrTokenTooLarge = errors.New("the refresh token does not fit beside the key")

// ErrExists is returned by Put when the id is taken and overwriting was not asked for.
var ErrExists = errors.New("a key with this id already exists in the key store")

// Store keeps private keys under ids such as "ca-default-1a2b3c4d".
type Store interface {
	// Kind names the store as users select it: "file" or "keyring".
	Kind() string
	// Put stores key under id; it fails with ErrExists unless overwrite.
	Put(id string, key crypto.Signer, overwrite bool) error
	// PutWithToken stores key with a refresh token of the identity
	// provider in the same entry, so that the token is written, moved
	// and removed with the key and protected as the key is.
	PutWithToken(id string, key crypto.Signer, token string, overwrite bool) error
	// Get returns the key stored under id, or ErrNotFound.
	Get(id string) (crypto.Signer, error)
	// Token returns the refresh token stored with id's key: "" when
	// there is none, ErrNotFound when there is no key.
	Token(id string) (string, error)
	// Delete removes id; ErrNotFound if it was not there.
	Delete(id string) error
	// List returns the ids that start with prefix, sorted.
	List(prefix string) ([]string, error)
}

// CheckID rejects ids that could escape a directory or confuse a keyring.
func CheckID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("key id %q must be 1 to 128 characters", id)
	}
	if strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+") != "" || strings.HasPrefix(id, ".") {
		return fmt.Errorf("key id %q may contain only letters, digits, '-', '_', '+' and '.', and may not start with '.'", id)
	}
	return nil
}
