// Package castore owns the CAs docker-tls knows, on disk under
// $DOCKER_CONFIG/tls/ca/NAME/: the CA certificate (ca.pem) and a small
// ca.json saying where its key lives. The key itself is kept by a
// keystore.Store; this package never writes key bytes itself.
package castore

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

// DefaultName is the CA used when a command is given none.
const DefaultName = "default"

// ErrNotFound is returned for an unknown CA name.
var ErrNotFound = errors.New("no such CA")

// ErrExists is returned when creating a CA whose name is taken, without force.
var ErrExists = errors.New("a CA with this name already exists")

// Meta is what ca.json records about a CA.
type Meta struct {
	Name string `json:"name"`
	// KeyStore is the kind of store that holds the key ("file", "keyring").
	KeyStore string `json:"keyStore"`
	KeyID    string `json:"keyID"`
	// Imported is true for CAs adopted with `ca import`.
	Imported bool      `json:"imported,omitempty"`
	Created  time.Time `json:"created"`
}

// CA is a stored CA: its metadata and certificate.
type CA struct {
	Meta
	Cert *x509.Certificate
	// Dir is the CA's directory; CertPath its ca.pem.
	Dir      string
	CertPath string
}

// Store reads and writes CAs under Dir (normally $DOCKER_CONFIG/tls/ca).
type Store struct {
	Dir string
	// KeyStore returns the key store of a kind, so that a CA whose key lives
	// in another store than the current default still loads.
	KeyStore func(kind string) (keystore.Store, error)
}

// CheckName rejects CA names that are not safe as a directory name.
func CheckName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("CA name %q must be 1 to 64 characters", name)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '_' || r == '.'))
		if !ok {
			return fmt.Errorf("CA name %q may contain only letters, digits, '-', '_' and '.', and must start with a letter or digit", name)
		}
	}
	return nil
}

// KeyID is the key store id for a CA's key: the name plus part of the key's
// identifier, so a re-created CA never collides with a stale entry.
func KeyID(name string, cert *x509.Certificate) string {
	return "ca-" + name + "-" + hex.EncodeToString(cert.SubjectKeyId)[:min(12, 2*len(cert.SubjectKeyId))]
}

// CreateOptions control Create.
type CreateOptions struct {
	// Keys is the store that receives the key.
	Keys keystore.Store
	// Imported marks a CA adopted from files.
	Imported bool
	// Force replaces an existing CA of the same name (and deletes its key).
	Force bool
	// Now stamps Created; defaults to time.Now().
	Now time.Time
}

// Create stores a new CA: the key into opts.Keys, the certificate and
// metadata into Dir/NAME. The CA appears whole or not at all: files are
// written into a temporary directory renamed into place, and the key is
// removed again if anything after it fails.
func (s *Store) Create(name string, ca *pki.CA, opts CreateOptions) (*CA, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	final := filepath.Join(s.Dir, name)
	old, err := s.Get(name)
	switch {
	case err == nil && !opts.Force:
		return nil, fmt.Errorf("CA %q: %w (use --force to replace it; its key will be deleted)", name, ErrExists)
	case err != nil && !errors.Is(err, ErrNotFound):
		if !opts.Force {
			return nil, err
		}
		old = nil // a broken CA dir is replaced with --force
	}
	if len(ca.Cert.SubjectKeyId) == 0 {
		if ski, err := pki.SubjectKeyID(ca.Cert.PublicKey); err == nil {
			ca.Cert.SubjectKeyId = ski
		}
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	meta := Meta{Name: name, KeyStore: opts.Keys.Kind(), KeyID: KeyID(name, ca.Cert), Imported: opts.Imported, Created: now.UTC()}
	metaJSON, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := fsutil.MkdirPrivate(s.Dir); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(s.Dir, "."+name+".new-*")
	if err != nil {
		return nil, fmt.Errorf("create CA %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, fsutil.PrivateDir); err != nil {
		return nil, err
	}
	if err := fsutil.WriteFile(filepath.Join(tmp, "ca.pem"), pki.EncodeCertificate(ca.Cert), fsutil.PublicFile, false); err != nil {
		return nil, err
	}
	if err := fsutil.WriteFile(filepath.Join(tmp, "ca.json"), append(metaJSON, '\n'), fsutil.PrivateFile, false); err != nil {
		return nil, err
	}
	sameKey := old != nil && old.KeyID == meta.KeyID && old.KeyStore == meta.KeyStore
	if err := opts.Keys.Put(meta.KeyID, ca.Key, sameKey); err != nil {
		return nil, fmt.Errorf("store CA key: %w", err)
	}
	undoKey := func() {
		if !sameKey {
			_ = opts.Keys.Delete(meta.KeyID)
		}
	}
	var aside string
	if old != nil || opts.Force {
		if _, err := os.Lstat(final); err == nil {
			aside = filepath.Join(s.Dir, "."+name+".old-"+now.Format("20060102T150405.000000000"))
			if err := os.Rename(final, aside); err != nil {
				undoKey()
				return nil, fmt.Errorf("replace CA %s: %w", name, err)
			}
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		undoKey()
		if aside != "" {
			_ = os.Rename(aside, final)
		}
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("CA %q: %w", name, ErrExists)
		}
		return nil, fmt.Errorf("create CA %s: %w", name, err)
	}
	if aside != "" {
		_ = os.RemoveAll(aside)
	}
	if old != nil && !sameKey {
		if ks, err := s.keyStore(old.KeyStore); err == nil {
			_ = ks.Delete(old.KeyID)
		}
	}
	return s.Get(name)
}

func (s *Store) keyStore(kind string) (keystore.Store, error) {
	if s.KeyStore == nil {
		return nil, errors.New("no key store configured")
	}
	return s.KeyStore(kind)
}

// Get reads one CA.
func (s *Store) Get(name string) (*CA, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Dir, name)
	metaJSON, err := os.ReadFile(filepath.Join(dir, "ca.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("CA %q: %w (create it with `docker tls ca init %s` or adopt one with `docker tls ca import`)", name, ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("read CA %s: %w", name, err)
	}
	var meta Meta
	if err := json.Unmarshal(metaJSON, &meta); err != nil {
		return nil, fmt.Errorf("read CA %s: ca.json: %w", name, err)
	}
	certPath := filepath.Join(dir, "ca.pem")
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read CA %s: %w", name, err)
	}
	cert, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("read CA %s: %s: %w", name, certPath, err)
	}
	meta.Name = name
	return &CA{Meta: meta, Cert: cert, Dir: dir, CertPath: certPath}, nil
}

// List reads every CA, sorted by name. A CA that cannot be read is returned
// with its error rather than hiding the others.
func (s *Store) List() ([]*CA, map[string]error, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list CAs: %w", err)
	}
	var (
		cas  []*CA
		errs = map[string]error{}
	)
	for _, e := range entries {
		if !e.IsDir() || CheckName(e.Name()) != nil {
			continue
		}
		ca, err := s.Get(e.Name())
		if err != nil {
			errs[e.Name()] = err
			continue
		}
		cas = append(cas, ca)
	}
	slices.SortFunc(cas, func(a, b *CA) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return cas, errs, nil
}

// SetKeyStore records that the CA's key now lives in another key store (after
// a migration that has already copied it there).
func (s *Store) SetKeyStore(name, kind string) error {
	ca, err := s.Get(name)
	if err != nil {
		return err
	}
	ca.Meta.KeyStore = kind
	data, err := json.MarshalIndent(ca.Meta, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFile(filepath.Join(ca.Dir, "ca.json"), append(data, '\n'), fsutil.PrivateFile, true)
}

// Signer loads the CA's key and returns a CA ready to issue.
func (s *Store) Signer(ca *CA) (*pki.CA, error) {
	ks, err := s.keyStore(ca.KeyStore)
	if err != nil {
		return nil, fmt.Errorf("CA %s key: %w", ca.Name, err)
	}
	key, err := ks.Get(ca.KeyID)
	if err != nil {
		return nil, fmt.Errorf("CA %s key: %w", ca.Name, err)
	}
	signer, err := pki.LoadCA(ca.Cert, key)
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", ca.Name, err)
	}
	return signer, nil
}
