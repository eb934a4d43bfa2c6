package keystore

import (
	"crypto"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
)

// File keeps each key as a 0600 PEM file ID.pem in a 0700 directory, for
// headless hosts and CI where no OS keyring runs. With a Passphrase, keys are
// written as encrypted PKCS#8 and read back with it.
type File struct {
	Dir string
	// Passphrase encrypts keys on Put and decrypts them on Get. Keys stored
	// without one are read without it.
	Passphrase []byte
}

// Kind implements Store.
func (f *File) Kind() string { return KindFile }

func (f *File) path(id string) (string, error) {
	if err := CheckID(id); err != nil {
		return "", err
	}
	return filepath.Join(f.Dir, id+".pem"), nil
}

// tokenBlock is the PEM type of a refresh token kept after the key in
// its file (key parsers read the first key block and ignore it).
const tokenBlock = "DOCKER-TLS REFRESH TOKEN"

// Put implements Store.
func (f *File) Put(id string, key crypto.Signer, overwrite bool) error {
	return f.PutWithToken(id, key, "", overwrite)
}

// PutWithToken implements Store: the token is a PEM block after the key,
// in the same 0600 file.
func (f *File) PutWithToken(id string, key crypto.Signer, token string, overwrite bool) error {
	p, err := f.path(id)
	if err != nil {
		return err
	}
	data, err := pki.EncodePrivateKey(key, f.Passphrase)
	if err != nil {
		return err
	}
	if token != "" {
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: tokenBlock, Bytes: []byte(token)})...)
	}
	if err := fsutil.MkdirPrivate(tempDir(f.Dir)); err != nil {
		return err
	}
	if err := fsutil.WriteFileVia(tempDir(f.Dir), p, data, fsutil.PrivateFile, overwrite); err != nil {
		if errors.Is(err, fsutil.ErrExists) {
			return fmt.Errorf("key %s: %w", id, ErrExists)
		}
		return err
	}
	return nil
}

// Get implements Store.
func (f *File) Get(id string) (crypto.Signer, error) {
	p, err := f.path(id)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("key %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", id, err)
	}
	key, err := pki.ParsePrivateKey(data, f.Passphrase)
	if err != nil {
		return nil, fmt.Errorf("key %s (%s): %w", id, p, err)
	}
	return key, nil
}

// Token implements Store.
func (f *File) Token(id string) (string, error) {
	p, err := f.path(id)
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("key %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("read key %s: %w", id, err)
	}
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return "", nil
		}
		if b.Type == tokenBlock {
			return string(b.Bytes), nil
		}
	}
}

// Encrypted reports whether the key stored under id needs a passphrase.
func (f *File) Encrypted(id string) (bool, error) {
	p, err := f.path(id)
	if err != nil {
		return false, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("key %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return false, err
	}
	return pki.IsEncryptedKey(data), nil
}

// Delete implements Store.
func (f *File) Delete(id string) error {
	p, err := f.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("key %s: %w", id, ErrNotFound)
		}
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	return nil
}

// List implements Store.
func (f *File) List(prefix string) ([]string, error) {
	entries, err := os.ReadDir(f.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	var ids []string
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".pem")
		if !ok || e.IsDir() || CheckID(id) != nil || !strings.HasPrefix(id, prefix) {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}
