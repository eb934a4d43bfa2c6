package contexts

import (
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/context/docker"
	"github.com/docker/cli/cli/context/store"

	"github.com/docker-tls/docker-tls/internal/crashpoint"
	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/internal/journal"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

// Every change below that touches a key store and the context store goes
// through one plan, recorded in the journal before any key is created:
//
//	intent      the plan is written: which key id will be stored, which
//	            one the context used before. Undo: delete the new key.
//	key-stored  the new key is in its store. From here the change is
//	            committed: recovery writes the context from the plan and
//	            the stored key, then deletes the old key.
//
// The context itself is written by exchanging its whole TLS directory with
// one staged in the journal's scratch directory, then its metadata (one
// atomic write by docker/cli's store); a crash between the two is finished
// by recovery. The old key is deleted only after both.

const (
	owner          = "context"
	phaseKeyStored = "key-stored"
)

// KeyOf is the key a managed context uses.
func (c *Context) KeyOf() keystore.Ref { return keystore.Ref{Store: c.TLS.KeyStore, ID: c.TLS.KeyID} }

// plan is what a change will make of one context; it holds no secret.
type plan struct {
	Old    *keystore.Ref `json:"old,omitempty"` // the key the context used before
	New    *keystore.Ref `json:"new,omitempty"` // the key it uses after; nil for a removal
	PutKey bool          `json:"putKey,omitempty"`
	Remove bool          `json:"remove,omitempty"`
	// What the context becomes.
	Description string `json:"description,omitempty"`
	Host        string `json:"host,omitempty"`
	CAPEM       string `json:"caPEM,omitempty"`
	CertPEM     string `json:"certPEM,omitempty"`
	KeyFile     bool   `json:"keyFile,omitempty"` // a key.pem copy for the docker CLI
	Meta        Meta   `json:"meta"`
	// token is the identity provider's refresh token that goes into the
	// key's entry with a put key. Unexported: the journal, which records
	// the plan, never holds it.
	token string
}

// oldKeyGoes reports whether committing p makes its old key unused.
func (p *plan) oldKeyGoes() bool { return p.Old != nil && (p.New == nil || *p.Old != *p.New) }

// newKeyIsExtra reports whether undoing p must delete its new key.
func (p *plan) newKeyIsExtra() bool {
	return p.PutKey && p.New != nil && (p.Old == nil || *p.Old != *p.New)
}

// KeyID is the key store id of a context's client key: the context name and
// 12 hex digits of the key identifier, so a re-issued key never collides
// with the one it replaces and a context's keys are easy to find.
func KeyID(name string, cert *x509.Certificate) string {
	ski := cert.SubjectKeyId
	if len(ski) == 0 {
		ski, _ = pki.SubjectKeyID(cert.PublicKey)
	}
	return "ctx-" + name + "-" + hex.EncodeToString(ski)[:min(12, 2*len(ski))]
}

// IsKeyOf reports whether a key id was made by KeyID for context name.
func IsKeyOf(id, name string) bool {
	rest, ok := strings.CutPrefix(id, "ctx-"+name+"-")
	return ok && isHex(rest, 12)
}

// isHex says whether s is 1 to max lowercase hex digits.
func isHex(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Identity is a client identity: the CA, the client certificate and its key.
type Identity struct {
	CA, Cert *x509.Certificate
	Key      crypto.Signer
}

// CreateOptions describe a new context.
type CreateOptions struct {
	Name        string
	Description string
	// Host is the engine's endpoint, tcp://HOST:PORT.
	Host string
	Identity
	// KeyStore is the kind of store the key goes to.
	KeyStore string
	// AgentSocket, when set, makes an agent-mode context: the docker
	// endpoint is unix://AgentSocket and no TLS file exists.
	AgentSocket string
	// Where the certificate came from.
	CAName   string
	CAURL    string
	SignIn   bool
	Imported bool
	// Catalog is the CA service whose catalog the context is made from.
	Catalog string
	// RefreshToken, from a sign-in, is kept with the key, in its entry.
	RefreshToken string
	// Force replaces an existing context of the same name (broken or not).
	Force bool
	// FromCatalogOnly, with Force, replaces only a context made from
	// the same Catalog: decided under the lock, so a context someone
	// made meanwhile is never replaced.
	FromCatalogOnly bool
}

// Create stores the key and writes a context, whole, under the state lock.
// Replacing (Force), the old context stays usable until the new one is
// committed, and its key is deleted only after that. replaced is the
// context that was there before, if any could be read.
func (s *Store) Create(o CreateOptions) (c, replaced *Context, err error) {
	if err := o.check(); err != nil {
		return nil, nil, err
	}
	release, err := s.j.Lock()
	if err != nil {
		return nil, nil, err
	}
	defer release()
	old, broken, err := s.replacing(o)
	if err != nil {
		return nil, nil, err
	}
	p := createPlan(o, old)
	if err := s.run("create", o.Name, p, o.Key); err != nil {
		return nil, nil, err
	}
	if broken || old == nil || !old.Managed() {
		// Keys a broken context (or an older docker-tls) left: nothing owns them now.
		s.dropStaleKeys(o.Name, *p.New)
	}
	c, err = s.Get(o.Name)
	return c, old, err
}

// check refuses, before the lock, what can make no context.
func (o CreateOptions) check() error {
	if err := ValidateName(o.Name); err != nil {
		return err
	}
	if o.Key == nil || o.Cert == nil || o.CA == nil {
		return errors.New("a context needs a CA, a client certificate and its key")
	}
	if err := pki.CheckKeyMatch(o.Cert, o.Key); err != nil {
		return err
	}
	return keystore.CheckKind(o.KeyStore)
}

// replacing reads, under the lock, the context Create would replace and
// whether Create may: old is nil when there is none, or when the one
// there is broken and Force replaces it.
func (s *Store) replacing(o CreateOptions) (old *Context, broken bool, err error) {
	old, err = s.Get(o.Name)
	switch {
	case err == nil && !o.Force:
		return nil, false, fmt.Errorf("context %q %w", o.Name, ErrExists)
	case err != nil && errors.Is(err, ErrNotFound):
		return nil, false, nil
	case o.FromCatalogOnly && (err != nil || !old.Managed() || old.TLS.Catalog != o.Catalog):
		return nil, false, fmt.Errorf("context %q: %w", o.Name, ErrNotFromCatalog)
	case err != nil && !o.Force:
		if damaged := (*DamagedError)(nil); errors.As(err, &damaged) {
			return nil, false, &DamagedError{Name: damaged.Name, Err: damaged.Err, Replace: true}
		}
		return nil, false, err
	case err != nil:
		return nil, true, nil
	}
	return old, false, nil
}

// createPlan is the plan of Create: o's context replacing old (nil if none
// can be read).
func createPlan(o CreateOptions, old *Context) plan {
	caPEM, certPEM := pki.EncodeCertificate(o.CA), pki.EncodeCertificate(o.Cert)
	p := plan{
		New:         &keystore.Ref{Store: o.KeyStore, ID: KeyID(o.Name, o.Cert)},
		PutKey:      true,
		Description: o.Description,
		Host:        o.Host,
		CAPEM:       string(caPEM),
		CertPEM:     string(certPEM),
		KeyFile:     o.AgentSocket == "",
		token:       o.RefreshToken,
		Meta: Meta{
			KeyStore: o.KeyStore, KeyID: KeyID(o.Name, o.Cert), KeyType: pki.DescribeKey(o.Key.Public()),
			CA: o.CAName, CAURL: o.CAURL, SignIn: o.SignIn, Catalog: o.Catalog, CAFingerprint: pki.Fingerprint(o.CA), Imported: o.Imported,
			Subject: o.Cert.Subject.String(), Groups: pki.GroupsOf(o.Cert), Issuer: o.Cert.Issuer.String(), NotAfter: o.Cert.NotAfter,
		},
	}
	if o.AgentSocket != "" {
		p.Host = "unix://" + o.AgentSocket
		p.Meta.Agent, p.Meta.Remote = true, o.Host
		p.Meta.CAPEM, p.Meta.CertPEM = string(caPEM), string(certPEM)
		p.CAPEM, p.CertPEM = "", ""
	}
	if old != nil && old.Managed() {
		ref := old.KeyOf()
		p.Old = &ref
	}
	return p
}

// run carries out p for context name: journal, key, context, old key.
func (s *Store) run(op, name string, p plan, key crypto.Signer) error {
	if p.PutKey {
		if err := s.keys.Ready(p.New.Store); err != nil {
			return fmt.Errorf("store the client key: %w", err)
		}
	}
	e, err := s.j.Begin(owner, op, name, p)
	if err != nil {
		return err
	}
	if p.PutKey {
		ks, err := s.keys.Open(p.New.Store, nil)
		if err != nil {
			return s.undo(e, p, err)
		}
		err = ks.PutWithToken(p.New.ID, key, p.token, true)
		if errors.Is(err, keystore.ErrTokenTooLarge) {
			// The token only spares the person a sign-in after expiry:
			// the key without it still makes a working context.
			err = ks.Put(p.New.ID, key, true)
		}
		if err != nil {
			return s.undo(e, p, err)
		}
		if err := e.Advance(phaseKeyStored); err != nil {
			return s.undo(e, p, err)
		}
	}
	if err := s.commit(name, p, key); err != nil {
		if e.Phase == journal.PhaseIntent {
			return s.undo(e, p, err)
		}
		// Committed: the entry stays, and the next command finishes it.
		return fmt.Errorf("context %s: %w (the next docker tls command completes the change)", name, err)
	}
	return e.Done()
}

// undo withdraws a change that has not reached its commit point.
func (s *Store) undo(e *journal.Entry, p plan, cause error) error {
	if err := s.rollBack(p); err != nil {
		return fmt.Errorf("%w (undoing it failed too: %v; the next docker tls command retries)", cause, err)
	}
	if err := e.Done(); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

func (s *Store) rollBack(p plan) error {
	if !p.newKeyIsExtra() {
		return nil
	}
	return s.keys.Delete(*p.New)
}

// commit makes the context what p says and deletes the key it no longer uses.
func (s *Store) commit(name string, p plan, key crypto.Signer) error {
	if p.Remove {
		if err := s.s.Remove(name); err != nil {
			return err
		}
		crashpoint.Hit("context-remove:removed")
	} else if err := s.write(name, p, key); err != nil {
		return err
	}
	if p.oldKeyGoes() {
		if err := s.keys.Delete(*p.Old); err != nil {
			return fmt.Errorf("delete the old key %s: %w", p.Old, err)
		}
	}
	return nil
}

// write makes the context's TLS files and metadata what p says. With TLS
// files, they go first, so a new context appears only once whole; without
// (agent mode), the metadata goes first, so the docker CLI is pointed at the
// agent before the files it used are removed.
func (s *Store) write(name string, p plan, key crypto.Signer) error {
	meta := p.Meta
	meta.Version = 1
	md := store.Metadata{
		Name: name,
		Metadata: command.DockerContext{
			Description:      p.Description,
			AdditionalFields: map[string]any{Field: meta},
		},
		Endpoints: map[string]any{docker.DockerEndpoint: docker.EndpointMeta{Host: p.Host}},
	}
	if p.CAPEM == "" {
		if err := s.s.CreateOrUpdate(md); err != nil {
			return fmt.Errorf("write context %s: %w", name, err)
		}
		crashpoint.Hit("context-write:meta")
		return s.s.ResetTLSMaterial(name, nil)
	}
	files := map[string][]byte{CAFile: []byte(p.CAPEM), CertFile: []byte(p.CertPEM)}
	if p.KeyFile {
		if key == nil {
			return errors.New("no key for the key.pem copy")
		}
		keyPEM, err := pki.EncodePrivateKey(key, nil)
		if err != nil {
			return err
		}
		files[KeyFile] = keyPEM
	}
	if err := s.writeTLS(name, files); err != nil {
		return fmt.Errorf("write TLS files of context %s: %w", name, err)
	}
	crashpoint.Hit("context-write:tls")
	if err := s.s.CreateOrUpdate(md); err != nil {
		return fmt.Errorf("write context %s: %w", name, err)
	}
	return nil
}

// tlsDir is the docker endpoint's TLS directory of a context.
func (s *Store) tlsDir(name string) string {
	return filepath.Join(s.s.GetStorageInfo(name).TLSPath, docker.DockerEndpoint)
}

// writeTLS replaces the context's TLS directory with one holding exactly
// files, in one step: the new directory is staged in the journal's scratch
// directory (0700, emptied by the next command if this one dies) and
// exchanged with the live one (renameat2 on Linux), or renamed into place
// when there is none. Where exchanging is not possible the old directory is
// moved aside first; recovery rewrites a context caught in between.
func (s *Store) writeTLS(name string, files map[string][]byte) error {
	staging, err := s.j.ScratchDir("ctx-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging) // after an exchange: the old files
	next := filepath.Join(staging, docker.DockerEndpoint)
	if err := os.Mkdir(next, fsutil.PrivateDir); err != nil {
		return err
	}
	for f, data := range files {
		if err := fsutil.WriteFile(filepath.Join(next, f), data, fsutil.PrivateFile, false); err != nil {
			return err
		}
	}
	live := s.tlsDir(name)
	if err := fsutil.MkdirPrivate(filepath.Dir(live)); err != nil {
		return err
	}
	if err := fsutil.ReplaceDir(next, live, filepath.Join(staging, "old"), func() { crashpoint.Hit("context-write:moved-aside") }); err != nil {
		if !errors.Is(err, fs.ErrExist) && !isCrossDevice(err) {
			return err
		}
		// Another file system under the context store: file by file.
		return s.s.ResetEndpointTLSMaterial(name, docker.DockerEndpoint, &store.EndpointTLSData{Files: files})
	}
	return nil
}

// recoverEntry finishes or undoes an interrupted change (journal.Recoverer).
func (s *Store) recoverEntry(e *journal.Entry) error {
	var p plan
	if err := e.Decode(&p); err != nil {
		return err
	}
	// docker/cli's own atomic write of meta.json stages a .tmp-* file
	// beside it; a kill mid-write leaves it (no secret in it).
	defer func() {
		stale, _ := filepath.Glob(filepath.Join(s.s.GetStorageInfo(e.Name).MetadataPath, ".tmp-*"))
		for _, f := range stale {
			_ = os.Remove(f)
		}
	}()
	// A change that puts a new key is withdrawn until the key is known to
	// be stored (nothing of the context was written before that). Any
	// other change has everything it needs in the journal, and may have
	// been half written when it stopped: it is finished.
	if e.Phase == journal.PhaseIntent && p.PutKey {
		return s.rollBack(p)
	}
	var key crypto.Signer
	if p.KeyFile && !p.Remove {
		ks, err := s.keys.Open(p.New.Store, nil)
		if err != nil {
			return err
		}
		if key, err = ks.Get(p.New.ID); err != nil {
			return fmt.Errorf("context %s needs its key back: %w", e.Name, err)
		}
	}
	return s.commit(e.Name, p, key)
}

// dropStaleKeys deletes keys of context name, other than keep, from both
// stores: what a broken context or an older docker-tls left.
func (s *Store) dropStaleKeys(name string, keep keystore.Ref) {
	for _, kind := range keystore.KindNames() {
		ks, err := s.keys.Open(kind, nil)
		if err != nil {
			continue
		}
		ids, err := ks.List("ctx-" + name + "-")
		if err != nil {
			continue
		}
		for _, id := range ids {
			if IsKeyOf(id, name) && (keystore.Ref{Store: kind, ID: id}) != keep {
				_ = ks.Delete(id)
			}
		}
	}
}

// Renew swaps a new certificate (and, with key set, a new key) into a
// managed context. was is the context as the caller read it before getting
// the certificate: if another command changed its key meanwhile, a renewal
// that keeps the key is refused (the certificate would not match), while a
// rekey goes ahead and retires whatever key the context has now.
func (s *Store) Renew(was *Context, cert *x509.Certificate, key crypto.Signer, rekey bool) (*Context, error) {
	release, err := s.j.Lock()
	if err != nil {
		return nil, err
	}
	defer release()
	c, err := s.Managed(was.Name)
	if err != nil {
		return nil, err
	}
	if !rekey && c.KeyOf() != was.KeyOf() {
		return nil, errChangedMeanwhile(c)
	}
	if err := pki.CheckKeyMatch(cert, key); err != nil {
		return nil, err
	}
	p, err := s.planOf(c)
	if err != nil {
		return nil, err
	}
	p.setCert(c, cert)
	if rekey {
		p.New = &keystore.Ref{Store: c.TLS.KeyStore, ID: KeyID(c.Name, cert)}
		p.PutKey = true
		p.Meta.KeyID, p.Meta.KeyType = p.New.ID, pki.DescribeKey(key.Public())
		p.token = s.tokenOf(c.KeyOf()) // the sign-in's refresh token follows the key
	}
	if err := s.run("renew", c.Name, p, key); err != nil {
		return nil, err
	}
	return s.Get(c.Name)
}

// Retrust changes what a managed context trusts and, optionally, its
// client certificate, keeping its key: the steps of a CA rotation. caPEM
// is the CA bundle the docker CLI will trust (the old and the new CA while
// a rotation runs, then the new alone); cert, if not nil, must be for the
// context's current key. was is the context as the caller read it: if
// another command changed its key meanwhile, nothing is written.
func (s *Store) Retrust(was *Context, caPEM []byte, cert *x509.Certificate) (*Context, error) {
	release, err := s.j.Lock()
	if err != nil {
		return nil, err
	}
	defer release()
	c, err := s.Managed(was.Name)
	if err != nil {
		return nil, err
	}
	if c.KeyOf() != was.KeyOf() {
		return nil, errChangedMeanwhile(c)
	}
	cas, err := pki.ParseCertificates(caPEM)
	if err != nil || len(cas) == 0 {
		return nil, fmt.Errorf("context %s: the CA bundle: %w", c.Name, errors.Join(err, errors.New("no certificate")))
	}
	p, err := s.planOf(c)
	if err != nil {
		return nil, err
	}
	key, err := s.storedKey(c, []byte(p.cert(c)))
	if err != nil {
		return nil, err
	}
	if cert != nil {
		if err := pki.CheckKeyMatch(cert, key); err != nil {
			return nil, fmt.Errorf("context %s: %w", c.Name, err)
		}
		p.setCert(c, cert)
	}
	// The trust last: the key was checked against the certificate the
	// context has now.
	if c.AgentMode() {
		p.Meta.CAPEM = string(caPEM)
	} else {
		p.CAPEM = string(caPEM)
	}
	p.Meta.CAFingerprint = pki.Fingerprint(cas[0])
	if err := s.run("retrust", c.Name, p, key); err != nil {
		return nil, err
	}
	return s.Get(c.Name)
}

// cert is the client certificate PEM the plan gives c: in its TLS files,
// or in our field for an agent-mode context.
func (p *plan) cert(c *Context) string {
	if c.AgentMode() {
		return p.Meta.CertPEM
	}
	return p.CertPEM
}

// setCert gives c the client certificate cert, where c keeps it, with the
// summary ls shows.
func (p *plan) setCert(c *Context, cert *x509.Certificate) {
	certPEM := string(pki.EncodeCertificate(cert))
	if c.AgentMode() {
		p.Meta.CertPEM = certPEM
	} else {
		p.CertPEM = certPEM
	}
	p.Meta.Subject, p.Meta.Issuer, p.Meta.NotAfter = cert.Subject.String(), cert.Issuer.String(), cert.NotAfter
	p.Meta.Groups = pki.GroupsOf(cert)
}

// errChangedMeanwhile refuses a change computed from a context that another
// command has since given another key.
func errChangedMeanwhile(c *Context) error {
	return fmt.Errorf("context %s was changed by another docker tls command while this one ran (its key is now %s): nothing was changed; run the command again", c.Name, c.TLS.KeyID)
}

// planOf is the plan that rewrites context c as it is now; changes edit it.
func (s *Store) planOf(c *Context) (plan, error) {
	ref := c.KeyOf()
	p := plan{Old: &ref, New: &ref, Description: c.Description, Host: c.Host, KeyFile: c.HasFile(KeyFile), Meta: *c.TLS}
	if !c.AgentMode() {
		ca, err := s.ReadFile(c.Name, CAFile)
		if err != nil {
			return plan{}, err
		}
		cert, err := s.ReadFile(c.Name, CertFile)
		if err != nil {
			return plan{}, err
		}
		p.CAPEM, p.CertPEM = string(ca), string(cert)
	}
	return p, nil
}

// Managed reads a context docker-tls created, or says why it cannot and
// what to do instead.
func (s *Store) Managed(name string) (*Context, error) {
	c, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	if !c.Managed() {
		return nil, &NotManagedError{Name: name}
	}
	return c, nil
}

// storedKey reads a context's key from its key store and checks that it
// matches cert, so nothing is ever written or removed on the strength of a
// key that is not the context's.
func (s *Store) storedKey(c *Context, cert []byte) (crypto.Signer, error) {
	ks, err := s.keys.Open(c.TLS.KeyStore, nil)
	if err != nil {
		return nil, err
	}
	key, err := ks.Get(c.TLS.KeyID)
	if err != nil {
		return nil, fmt.Errorf("context %q: %w", c.Name, err)
	}
	leaf, err := pki.ParseCertificate(cert)
	if err != nil {
		return nil, fmt.Errorf("context %q: its certificate: %w", c.Name, err)
	}
	if err := pki.CheckKeyMatch(leaf, key); err != nil {
		return nil, fmt.Errorf("context %q: the key store entry %s %w", c.Name, c.TLS.KeyID, err)
	}
	return key, nil
}

// ToAgent converts a managed context to agent mode: the docker endpoint
// becomes unix://socket, the TLS files go, the key stays in its store.
func (s *Store) ToAgent(name, socket string) (*Context, error) {
	release, err := s.j.Lock()
	if err != nil {
		return nil, err
	}
	defer release()
	c, err := s.Managed(name)
	if err != nil {
		return nil, err
	}
	if c.AgentMode() {
		return c, nil
	}
	p, err := s.planOf(c)
	if err != nil {
		return nil, err
	}
	if _, err := s.storedKey(c, []byte(p.CertPEM)); err != nil {
		return nil, fmt.Errorf("%w: the context keeps its key file until the key store holds its key", err)
	}
	p.Meta.Agent, p.Meta.Remote, p.Meta.CAPEM, p.Meta.CertPEM = true, c.Host, p.CAPEM, p.CertPEM
	p.Host, p.CAPEM, p.CertPEM, p.KeyFile = "unix://"+socket, "", "", false
	if err := s.run("to-agent", name, p, nil); err != nil {
		return nil, err
	}
	return s.Get(name)
}

// ErrNotLocked and ErrAlreadyLocked say that Lock or Unlock had nothing to do.
var (
	ErrAlreadyLocked = errors.New("already locked")
	ErrNotLocked     = errors.New("not locked")
)

// Lock removes a managed context's key.pem copy, after checking that its
// key store holds the key, so the key is never lost with the copy.
func (s *Store) Lock(name string) error {
	release, err := s.j.Lock()
	if err != nil {
		return err
	}
	defer release()
	c, err := s.lockable(name)
	if err != nil {
		return err
	}
	if c.Locked() {
		return ErrAlreadyLocked
	}
	p, err := s.planOf(c)
	if err != nil {
		return err
	}
	if _, err := s.storedKey(c, []byte(p.CertPEM)); err != nil {
		return err
	}
	return s.writeTLS(name, map[string][]byte{CAFile: []byte(p.CAPEM), CertFile: []byte(p.CertPEM)})
}

// Unlock restores a locked context's key.pem copy from the key store. With
// force it also replaces a key.pem that is there but is not the key of the
// certificate (damaged, or another key), which is what `verify` reports.
func (s *Store) Unlock(name string, force bool) error {
	release, err := s.j.Lock()
	if err != nil {
		return err
	}
	defer release()
	c, err := s.lockable(name)
	if err != nil {
		return err
	}
	p, err := s.planOf(c)
	if err != nil {
		return err
	}
	if !c.Locked() {
		problem := s.CheckKeyFile(c)
		switch {
		case problem == nil:
			return ErrNotLocked
		case !force:
			return &KeyFileError{Name: name, Err: problem}
		}
	}
	key, err := s.storedKey(c, []byte(p.CertPEM))
	if err != nil {
		return err
	}
	keyPEM, err := pki.EncodePrivateKey(key, nil)
	if err != nil {
		return err
	}
	return s.writeTLS(name, map[string][]byte{CAFile: []byte(p.CAPEM), CertFile: []byte(p.CertPEM), KeyFile: keyPEM})
}

func (s *Store) lockable(name string) (*Context, error) {
	c, err := s.Managed(name)
	if err != nil {
		return nil, err
	}
	if c.AgentMode() {
		return nil, &AgentModeError{Name: name}
	}
	return c, nil
}

// CheckKeyFile says what is wrong with the key.pem the docker CLI will use
// for context c: nil when it parses and is the key of cert.pem.
func (s *Store) CheckKeyFile(c *Context) error {
	certPEM, err := s.ReadFile(c.Name, CertFile)
	if err != nil {
		return err
	}
	keyPEM, err := s.ReadFile(c.Name, KeyFile)
	if err != nil {
		return err
	}
	cert, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return fmt.Errorf("context %s: cert.pem: %w", c.Name, err)
	}
	key, err := pki.ParsePrivateKey(keyPEM, nil)
	if err != nil {
		return fmt.Errorf("context %s: its key.pem is not a usable key (%v)", c.Name, err)
	}
	if err := pki.CheckKeyMatch(cert, key); err != nil {
		return fmt.Errorf("context %s: its key.pem is not the key of its certificate", c.Name)
	}
	return nil
}

// Remove deletes a context and then its key. A context whose metadata
// cannot be read is removed too, with any key named after it.
func (s *Store) Remove(name string) (*Context, error) {
	release, err := s.j.Lock()
	if err != nil {
		return nil, err
	}
	defer release()
	c, err := s.Get(name)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, err
	case err != nil:
		// Broken: no key reference to read, so remove it and the keys named after it.
		if err := s.s.Remove(name); err != nil {
			return nil, err
		}
		s.dropStaleKeys(name, keystore.Ref{})
		return nil, nil
	}
	p := plan{Remove: true}
	if c.Managed() {
		ref := c.KeyOf()
		p.Old = &ref
	}
	if err := s.run("remove", name, p, nil); err != nil {
		return nil, err
	}
	return c, nil
}

// MoveKey moves a context's key to the key store of kind to: copy, switch
// the context to it, delete the old copy. It reports whether anything moved
// (false when the key is already there).
func (s *Store) MoveKey(name, to string) (bool, error) {
	if err := keystore.CheckKind(to); err != nil {
		return false, err
	}
	release, err := s.j.Lock()
	if err != nil {
		return false, err
	}
	defer release()
	c, err := s.Managed(name)
	if err != nil {
		return false, err
	}
	if c.TLS.KeyStore == to {
		return false, nil
	}
	p, err := s.planOf(c)
	if err != nil {
		return false, err
	}
	from, err := s.keys.Open(c.TLS.KeyStore, nil)
	if err != nil {
		return false, err
	}
	key, err := from.Get(c.TLS.KeyID)
	if err != nil {
		return false, err
	}
	p.New, p.PutKey = &keystore.Ref{Store: to, ID: c.TLS.KeyID}, true
	p.Meta.KeyStore = to
	p.token = s.tokenOf(c.KeyOf())
	if err := s.run("move-key", name, p, key); err != nil {
		return false, err
	}
	return true, nil
}

// tokenOf is the refresh token kept with the key ref names ("" if none,
// or if it cannot be read: a key without one signs in with the person).
func (s *Store) tokenOf(ref keystore.Ref) string {
	ks, err := s.keys.Open(ref.Store, nil)
	if err != nil {
		return ""
	}
	tok, _ := ks.Token(ref.ID)
	return tok
}

// RefreshToken is the identity provider's refresh token kept with a
// managed context's key, "" if none.
func (s *Store) RefreshToken(c *Context) string { return s.tokenOf(c.KeyOf()) }

// KeepRefreshToken stores token with the key of context was (whose key is
// key), replacing the one kept: the identity provider rotates refresh
// tokens as they are used. One write of the key's entry, under the state
// lock; nothing is written if another command changed the key meanwhile.
func (s *Store) KeepRefreshToken(was *Context, key crypto.Signer, token string) error {
	release, err := s.j.Lock()
	if err != nil {
		return err
	}
	defer release()
	c, err := s.Managed(was.Name)
	if err != nil {
		return err
	}
	if c.KeyOf() != was.KeyOf() {
		return errChangedMeanwhile(c)
	}
	ks, err := s.keys.Open(c.TLS.KeyStore, nil)
	if err != nil {
		return err
	}
	return ks.PutWithToken(c.TLS.KeyID, key, token, true)
}
