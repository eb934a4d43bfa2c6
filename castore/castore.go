// Package castore owns the CAs docker-tls knows, on disk under
// $DOCKER_CONFIG/tls/ca/NAME/: the CA certificate (ca.pem) and a small
// ca.json saying where its key lives. The key itself is kept by a
// keystore.Store; this package never writes key bytes itself.
package castore

import (
	"crypto"
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

	"github.com/docker-tls/docker-tls/internal/crashpoint"
	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/internal/journal"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

// DefaultName is the CA used when a command is given none.
const DefaultName = "default"

// ErrNotFound is returned for an unknown CA name, as a NotFoundError.
var ErrNotFound = errors.New("no such CA")

// NotFoundError names the CA that is not there.
type NotFoundError struct{ Name string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("CA %q: %v", e.Name, ErrNotFound) }

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// ErrExists is returned when creating a CA whose name is taken, without force.
// It reads `CA "NAME" already exists`.
var ErrExists = errors.New("already exists")

// Meta is what ca.json records about a CA.
type Meta struct {
	Name string `json:"name"`
	// KeyStore is the kind of store that holds the key ("file", "keyring").
	KeyStore string `json:"keyStore"`
	KeyID    string `json:"keyID"`
	// Imported is true for CAs adopted with `ca import`.
	Imported bool      `json:"imported,omitempty"`
	Created  time.Time `json:"created"`
	// Next is the CA that replaces this one during a rotation (ca
	// rotate): its certificate is next.pem, trusted beside ca.pem until
	// the rotation finishes.
	Next *NextMeta `json:"next,omitempty"`
	// Retired are the keys of CAs this one replaced, kept by
	// ca rotate --keep-old.
	Retired []keystore.Ref `json:"retired,omitempty"`
}

// NextMeta says where the key of a rotation's new CA lives.
type NextMeta struct {
	KeyStore string    `json:"keyStore"`
	KeyID    string    `json:"keyID"`
	Created  time.Time `json:"created"`
}

// CA is a stored CA: its metadata and certificate.
type CA struct {
	Meta
	Cert *x509.Certificate
	// NextCert is the certificate of the CA a rotation is moving to, if any.
	NextCert *x509.Certificate
	// Dir is the CA's directory; CertPath its ca.pem.
	Dir      string
	CertPath string
}

// Store reads and writes CAs under Dir (normally $DOCKER_CONFIG/tls/ca),
// their keys through the key stores, and every change through the journal.
type Store struct {
	Dir  string
	keys keystore.Stores
	j    *journal.Journal
}

// New returns the CA store under dir and registers its recovery with j.
func New(dir string, keys keystore.Stores, j *journal.Journal) *Store {
	s := &Store{Dir: dir, keys: keys, j: j}
	j.Handle(owner, s.recoverEntry)
	return s
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
	// KeyStore is the kind of store that receives the key.
	KeyStore string
	// Passphrase encrypts the key in the file store.
	Passphrase []byte
	// Imported marks a CA adopted from files.
	Imported bool
	// Force replaces an existing CA of the same name (and deletes its key).
	Force bool
	// Now stamps Created; defaults to time.Now().
	Now time.Time
}

// A CA change follows the journal's rule (see package journal): the plan
// names the new key before it is stored; once it is (key-stored) the
// change is committed and recovery writes the CA directory from the plan,
// which holds only public data, then deletes the old key.
const (
	owner          = "ca"
	phaseKeyStored = "key-stored"
)

type plan struct {
	Old     *keystore.Ref `json:"old,omitempty"`
	New     keystore.Ref  `json:"new"`
	PutKey  bool          `json:"putKey,omitempty"`
	CertPEM string        `json:"certPEM"`
	// NextPEM is a rotation's new CA certificate (next.pem), if any.
	NextPEM string `json:"nextPEM,omitempty"`
	Meta    Meta   `json:"meta"`
}

func (p *plan) oldKeyGoes() bool    { return p.Old != nil && *p.Old != p.New }
func (p *plan) newKeyIsExtra() bool { return p.PutKey && (p.Old == nil || *p.Old != p.New) }

// Create stores a new CA: the key into its key store, the certificate and
// metadata into Dir/NAME. Replacing (Force), the old CA stays whole until
// the new one is committed, and its key is deleted only after that.
func (s *Store) Create(name string, ca *pki.CA, opts CreateOptions) (*CA, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if err := keystore.CheckKind(opts.KeyStore); err != nil {
		return nil, err
	}
	release, err := s.j.Lock()
	if err != nil {
		return nil, err
	}
	defer release()
	old, err := s.Get(name)
	switch {
	case err == nil && !opts.Force:
		return nil, fmt.Errorf("CA %q %w", name, ErrExists)
	case err != nil && !errors.Is(err, ErrNotFound) && !opts.Force:
		return nil, err
	case err != nil:
		old = nil // absent, or broken and replaced with --force
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
	p := plan{
		New:     keystore.Ref{Store: opts.KeyStore, ID: KeyID(name, ca.Cert)},
		PutKey:  true,
		CertPEM: string(pki.EncodeCertificate(ca.Cert)),
		Meta:    Meta{Name: name, KeyStore: opts.KeyStore, KeyID: KeyID(name, ca.Cert), Imported: opts.Imported, Created: now.UTC()},
	}
	if old != nil {
		ref := old.KeyRef()
		p.Old = &ref
	}
	if err := s.run("create", name, p, ca.Key, opts.Passphrase); err != nil {
		return nil, err
	}
	return s.Get(name)
}

// KeyRef is where the CA's key lives.
func (c *CA) KeyRef() keystore.Ref { return keystore.Ref{Store: c.KeyStore, ID: c.KeyID} }

func (s *Store) run(op, name string, p plan, key crypto.Signer, passphrase []byte) error {
	if p.PutKey {
		if err := s.keys.Ready(p.New.Store); err != nil {
			return fmt.Errorf("store CA key: %w", err)
		}
	}
	e, err := s.j.Begin(owner, op, name, p)
	if err != nil {
		return err
	}
	if p.PutKey {
		err := func() error {
			ks, err := s.keys.Open(p.New.Store, passphrase)
			if err != nil {
				return err
			}
			if err := ks.Put(p.New.ID, key, true); err != nil {
				return fmt.Errorf("store CA key: %w", err)
			}
			return e.Advance(phaseKeyStored)
		}()
		if err != nil {
			if e.Phase != journal.PhaseIntent {
				return err
			}
			if p.newKeyIsExtra() {
				if uerr := s.keys.Delete(p.New); uerr != nil {
					return fmt.Errorf("%w (undoing it failed too: %v; the next docker tls command retries)", err, uerr)
				}
			}
			return errors.Join(err, e.Done())
		}
	}
	if err := s.commit(name, p); err != nil {
		return fmt.Errorf("CA %s: %w (the next docker tls command completes the change)", name, err)
	}
	return e.Done()
}

func (s *Store) commit(name string, p plan) error {
	if err := s.writeDir(name, p); err != nil {
		return err
	}
	if p.oldKeyGoes() {
		if err := s.keys.Delete(*p.Old); err != nil {
			return fmt.Errorf("delete the old CA key %s: %w", p.Old, err)
		}
	}
	return nil
}

// writeDir replaces Dir/NAME with a directory holding the plan's ca.pem and
// ca.json, staged in the journal's scratch directory and exchanged (or
// renamed) into place in one step.
func (s *Store) writeDir(name string, p plan) error {
	metaJSON, err := json.MarshalIndent(p.Meta, "", "  ")
	if err != nil {
		return err
	}
	staging, err := s.j.ScratchDir("ca-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	next := filepath.Join(staging, "new")
	if err := os.Mkdir(next, fsutil.PrivateDir); err != nil {
		return err
	}
	if err := fsutil.WriteFile(filepath.Join(next, "ca.pem"), []byte(p.CertPEM), fsutil.PublicFile, false); err != nil {
		return err
	}
	if err := fsutil.WriteFile(filepath.Join(next, "ca.json"), append(metaJSON, '\n'), fsutil.PrivateFile, false); err != nil {
		return err
	}
	if p.NextPEM != "" {
		if err := fsutil.WriteFile(filepath.Join(next, "next.pem"), []byte(p.NextPEM), fsutil.PublicFile, false); err != nil {
			return err
		}
	}
	if err := fsutil.MkdirPrivate(s.Dir); err != nil {
		return err
	}
	return fsutil.ReplaceDir(next, filepath.Join(s.Dir, name), filepath.Join(staging, "old"), func() { crashpoint.Hit("ca-write:moved-aside") })
}

// recoverEntry finishes or undoes an interrupted change (journal.Recoverer).
func (s *Store) recoverEntry(e *journal.Entry) error {
	var p plan
	if err := e.Decode(&p); err != nil {
		return err
	}
	if e.Phase == journal.PhaseIntent {
		if p.newKeyIsExtra() {
			return s.keys.Delete(p.New)
		}
		return nil
	}
	return s.commit(e.Name, p)
}

// MoveKey moves a CA's key to the key store of kind to: copy, switch
// ca.json to it, delete the old copy. passphrase opens an encrypted file
// store key and encrypts it there. It reports whether anything moved.
func (s *Store) MoveKey(name, to string, passphrase []byte) (bool, error) {
	if err := keystore.CheckKind(to); err != nil {
		return false, err
	}
	release, err := s.j.Lock()
	if err != nil {
		return false, err
	}
	defer release()
	ca, err := s.Get(name)
	if err != nil {
		return false, err
	}
	if ca.KeyStore == to {
		return false, nil
	}
	from, err := s.keys.Open(ca.KeyStore, passphrase)
	if err != nil {
		return false, err
	}
	key, err := from.Get(ca.KeyID)
	if err != nil {
		return false, fmt.Errorf("CA %s key: %w", name, err)
	}
	old := ca.KeyRef()
	meta := ca.Meta
	meta.KeyStore = to
	p := plan{Old: &old, New: keystore.Ref{Store: to, ID: ca.KeyID}, PutKey: true, CertPEM: string(pki.EncodeCertificate(ca.Cert)), Meta: meta}
	if err := s.run("move-key", name, p, key, passphrase); err != nil {
		return false, err
	}
	return true, nil
}

// Get reads one CA.
func (s *Store) Get(name string) (*CA, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Dir, name)
	metaJSON, err := os.ReadFile(filepath.Join(dir, "ca.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &NotFoundError{Name: name}
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
	ca := &CA{Meta: meta, Cert: cert, Dir: dir, CertPath: certPath}
	if meta.Next != nil {
		nextPEM, err := os.ReadFile(filepath.Join(dir, "next.pem"))
		if err != nil {
			return nil, fmt.Errorf("read CA %s: the rotation's new CA: %w", name, err)
		}
		if ca.NextCert, err = pki.ParseCertificate(nextPEM); err != nil {
			return nil, fmt.Errorf("read CA %s: next.pem: %w", name, err)
		}
	}
	return ca, nil
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

// Signer loads the CA's key and returns a CA ready to issue.
// passphrase opens an encrypted key of the file store.
func (s *Store) Signer(ca *CA, passphrase []byte) (*pki.CA, error) {
	ks, err := s.keys.Open(ca.KeyStore, passphrase)
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

// Strays are half-made or set-aside CA directories that a killed command
// of an older version could leave (the journal finishes or undoes those of
// this one): a full scan, for prune only.
func (s *Store) Strays() []string {
	var out []string
	for _, g := range []string{".*.new-*", ".*.old-*"} {
		m, _ := filepath.Glob(filepath.Join(s.Dir, g))
		out = append(out, m...)
	}
	return out
}
