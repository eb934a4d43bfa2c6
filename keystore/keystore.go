// Package keystore owns where docker-tls keeps private keys: one interface,
// Store, with a file implementation (0600 PEM files, optionally
// passphrase-encrypted PKCS#8) and, next to it, the OS keyring. Callers pick a
// store by name and never learn how it keeps a key.
package keystore

import (
	"crypto"
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound is returned by Get and Delete for an unknown id.
var ErrNotFound = errors.New("no such key in the key store")

// ErrExists is returned by Put when the id is taken and overwriting was not asked for.
var ErrExists = errors.New("a key with this id already exists in the key store")

// Store keeps private keys under ids such as "ca-default-1a2b3c4d".
type Store interface {
	// Kind names the store as users select it: "file" or "keyring".
	Kind() string
	// Put stores key under id; it fails with ErrExists unless overwrite.
	Put(id string, key crypto.Signer, overwrite bool) error
	// Get returns the key stored under id, or ErrNotFound.
	Get(id string) (crypto.Signer, error)
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
