// Package contexts owns docker-tls's view of the Docker context store: it
// creates, reads, locks and removes contexts only through docker/cli's own
// store (never by writing meta.json), and marks the contexts docker-tls
// manages with an additional "x-docker-tls" field that records where the
// client key lives and what the certificate is.
package contexts

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/context/docker"
	"github.com/docker/cli/cli/context/store"

	"github.com/docker-tls/docker-tls/internal/fsutil"
)

// Field is the additional metadata field that marks a docker-tls context.
const Field = "x-docker-tls"

// The TLS files of the docker endpoint, as the docker CLI reads them.
const (
	CAFile   = "ca.pem"
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
)

// ErrNotFound is returned for an unknown context.
var ErrNotFound = errors.New("no such context")

// ErrExists is returned when a context exists and replacing it was not asked for.
var ErrExists = errors.New("context already exists")

// Meta is what docker-tls records in a context's x-docker-tls field: where
// the client key lives and a summary of the certificate, so that listing a
// thousand contexts needs no certificate parsing.
type Meta struct {
	Version       int       `json:"version"`
	KeyStore      string    `json:"keyStore"`
	KeyID         string    `json:"keyID"`
	KeyType       string    `json:"keyType,omitempty"`
	CA            string    `json:"ca,omitempty"`    // local CA name, if issued by one
	CAURL         string    `json:"caURL,omitempty"` // remote CA it enrolled with, if any
	CAFingerprint string    `json:"caFingerprint"`
	Subject       string    `json:"subject"`
	Issuer        string    `json:"issuer"`
	NotAfter      time.Time `json:"notAfter"`
	Imported      bool      `json:"imported,omitempty"`
	// Agent mode: the docker endpoint is the agent's socket, the context
	// holds no TLS files, and these say where the agent relays to.
	Agent   bool   `json:"agent,omitempty"`
	Remote  string `json:"remote,omitempty"`
	CAPEM   string `json:"caPEM,omitempty"`
	CertPEM string `json:"certPEM,omitempty"`
}

// Context is one Docker context as docker-tls sees it.
type Context struct {
	Name        string
	Description string
	Host        string
	// TLS is the docker-tls metadata; nil for contexts docker-tls did not make.
	TLS *Meta
	// Files are the TLS files present for the docker endpoint.
	Files []string
	// TLSDir is the DOCKER_CERT_PATH-style directory holding those files.
	TLSDir string
}

// Managed reports whether docker-tls created the context.
func (c *Context) Managed() bool { return c.TLS != nil }

// HasFile reports whether the docker endpoint has the named TLS file.
func (c *Context) HasFile(name string) bool { return slices.Contains(c.Files, name) }

// Locked reports whether a managed context's on-disk key copy is removed.
// Agent-mode contexts have none by design and are not "locked".
func (c *Context) Locked() bool { return c.Managed() && !c.TLS.Agent && !c.HasFile(KeyFile) }

// AgentMode reports whether the context reaches its engine through the agent.
func (c *Context) AgentMode() bool { return c.Managed() && c.TLS.Agent }

// RemoteHost is the engine's endpoint: the agent's target in agent mode.
func (c *Context) RemoteHost() string {
	if c.AgentMode() {
		return c.TLS.Remote
	}
	return c.Host
}

// Store is the Docker context store under a DOCKER_CONFIG directory.
type Store struct {
	configDir string
	s         *store.ContextStore
}

// Open returns the context store of configDir ($DOCKER_CONFIG).
func Open(configDir string) *Store {
	return &Store{configDir: configDir, s: store.New(filepath.Join(configDir, "contexts"), command.DefaultContextStoreConfig())}
}

// Stamp is a cheap token that changes whenever a context is created or
// removed: the modification time of the store's metadata directory, one
// stat instead of reading every context. A long-running reader (the agent)
// rescans only when it moves. Edits inside one context do not move it; the
// commands that make such edits tell the agent themselves.
func (s *Store) Stamp() string {
	fi, err := os.Stat(filepath.Join(s.configDir, "contexts", "meta"))
	if err != nil {
		return ""
	}
	return fi.ModTime().Format(time.RFC3339Nano)
}

// ValidateName applies docker's own rules for context names.
func ValidateName(name string) error { return store.ValidateContextName(name) }

// lock serialises writers of one context name across processes.
func (s *Store) lock(name string) (func(), error) {
	return fsutil.Lock(filepath.Join(s.configDir, "tls", "locks", "context-"+name+".lock"), 30*time.Second)
}

// Get reads one context.
func (s *Store) Get(name string) (*Context, error) {
	md, err := s.s.GetMetadata(name)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("context %q: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("read context %s: %w", name, err)
	}
	return s.fromMetadata(md)
}

// List reads every context in the store (not the virtual "default" one),
// sorted by name. Contexts that cannot be read are returned in errs.
func (s *Store) List() ([]*Context, map[string]error, error) {
	mds, err := s.s.List()
	if err != nil {
		return nil, nil, fmt.Errorf("list contexts: %w", err)
	}
	out := make([]*Context, 0, len(mds))
	errs := map[string]error{}
	for _, md := range mds {
		c, err := s.fromMetadata(md)
		if err != nil {
			errs[md.Name] = err
			continue
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Context) int { return strings.Compare(a.Name, b.Name) })
	return out, errs, nil
}

func (s *Store) fromMetadata(md store.Metadata) (*Context, error) {
	dc, err := command.GetDockerContext(md)
	if err != nil {
		return nil, fmt.Errorf("context %s: %w", md.Name, err)
	}
	c := &Context{Name: md.Name, Description: dc.Description}
	if ep, ok := md.Endpoints[docker.DockerEndpoint].(docker.EndpointMeta); ok {
		c.Host = ep.Host
	}
	if raw, ok := dc.AdditionalFields[Field]; ok {
		var m Meta
		b, _ := json.Marshal(raw)
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("context %s: %s field: %w", md.Name, Field, err)
		}
		c.TLS = &m
	}
	files, err := s.s.ListTLSFiles(md.Name)
	if err != nil {
		return nil, err
	}
	c.Files = files[docker.DockerEndpoint]
	c.TLSDir = filepath.Join(s.s.GetStorageInfo(md.Name).TLSPath, docker.DockerEndpoint)
	return c, nil
}

// ReadFile returns one TLS file of a context's docker endpoint.
func (s *Store) ReadFile(name, file string) ([]byte, error) {
	data, err := s.s.GetTLSData(name, docker.DockerEndpoint, file)
	if err != nil {
		return nil, fmt.Errorf("context %s: %w", name, err)
	}
	return data, nil
}

// CreateOptions describe a context to write.
type CreateOptions struct {
	Name        string
	Description string
	Host        string
	CA, Cert    []byte
	// Key is the on-disk copy the docker CLI reads; nil makes a locked context.
	Key  []byte
	Meta Meta
	// Force replaces an existing context of the same name.
	Force bool
	// Step, if set, is called after each write step; tests use it to
	// simulate a crash between steps.
	Step func(step string)
}

// Create writes a context whole or not at all. Under a per-name lock it
// checks the name, then (replacing) removes the old metadata so the context
// is briefly absent rather than mixed, writes the TLS material, and writes
// the metadata last: a context is visible only once it is complete. A crash
// at any point leaves either no context or a whole one, and stray TLS files
// of an invisible context are replaced by the next create.
func (s *Store) Create(o CreateOptions) (replaced *Context, err error) {
	if err := ValidateName(o.Name); err != nil {
		return nil, err
	}
	step := o.Step
	if step == nil {
		step = func(string) {}
	}
	release, err := s.lock(o.Name)
	if err != nil {
		return nil, err
	}
	defer release()
	old, err := s.Get(o.Name)
	switch {
	case err == nil && !o.Force:
		return nil, fmt.Errorf("context %q %w: use --force to replace it", o.Name, ErrExists)
	case err == nil:
		replaced = old
		if err := s.s.Remove(o.Name); err != nil {
			return nil, err
		}
		step("removed-old")
	case !errors.Is(err, ErrNotFound):
		return nil, err
	}
	var tlsData *store.ContextTLSData
	if o.CA != nil { // agent-mode contexts have no TLS files at all
		files := map[string][]byte{CAFile: o.CA, CertFile: o.Cert}
		if o.Key != nil {
			files[KeyFile] = o.Key
		}
		tlsData = &store.ContextTLSData{Endpoints: map[string]store.EndpointTLSData{docker.DockerEndpoint: {Files: files}}}
	}
	if err := s.s.ResetTLSMaterial(o.Name, tlsData); err != nil {
		return nil, fmt.Errorf("write TLS files of context %s: %w", o.Name, err)
	}
	step("wrote-tls")
	meta := o.Meta
	meta.Version = 1
	md := store.Metadata{
		Name: o.Name,
		Metadata: command.DockerContext{
			Description:      o.Description,
			AdditionalFields: map[string]any{Field: meta},
		},
		Endpoints: map[string]any{docker.DockerEndpoint: docker.EndpointMeta{Host: o.Host}},
	}
	if err := s.s.CreateOrUpdate(md); err != nil {
		_ = s.s.ResetTLSMaterial(o.Name, nil)
		return nil, fmt.Errorf("write context %s: %w", o.Name, err)
	}
	step("wrote-meta")
	return replaced, nil
}

// SetKey restores (key != nil) or removes (key == nil) the on-disk key copy
// of a managed context, keeping its CA and certificate.
func (s *Store) SetKey(name string, key []byte) error {
	release, err := s.lock(name)
	if err != nil {
		return err
	}
	defer release()
	if _, err := s.Get(name); err != nil {
		return err
	}
	files := map[string][]byte{}
	for _, f := range []string{CAFile, CertFile} {
		data, err := s.ReadFile(name, f)
		if err != nil {
			return err
		}
		files[f] = data
	}
	if key != nil {
		files[KeyFile] = key
	}
	return s.s.ResetEndpointTLSMaterial(name, docker.DockerEndpoint, &store.EndpointTLSData{Files: files})
}

// Renew swaps new TLS files (cert.pem, and key.pem unless the context is
// locked) into a managed context and then records meta, under the context's
// lock. A reader sees the old certificate or the new one. With the same key
// the swap is a single rename of cert.pem. With a new key, certificate and
// key must change together: the new TLS directory is built aside and
// exchanged with the old one in one atomic step (Linux); where that is not
// possible key.pem and then cert.pem are each renamed into place, and a
// crash between the two leaves a pair that a second renew repairs.
func (s *Store) Renew(name string, files map[string][]byte, meta Meta) error {
	release, err := s.lock(name)
	if err != nil {
		return err
	}
	defer release()
	c, err := s.Get(name)
	if err != nil {
		return err
	}
	if _, rekey := files[KeyFile]; rekey && c.HasFile(KeyFile) {
		err := s.exchangeTLSDir(c, files)
		if err == nil {
			return s.updateMetaLocked(name, meta)
		}
		if !errors.Is(err, fsutil.ErrExchangeUnsupported) {
			return fmt.Errorf("context %s: %w", name, err)
		}
	}
	// key.pem first, cert.pem last: the certificate is what readers and
	// `docker tls ls` go by.
	for _, f := range []string{KeyFile, CertFile} {
		data, ok := files[f]
		if !ok || (f == KeyFile && !c.HasFile(KeyFile)) {
			continue
		}
		if err := fsutil.WriteFile(filepath.Join(c.TLSDir, f), data, fsutil.PrivateFile, true); err != nil {
			return fmt.Errorf("context %s: %w", name, err)
		}
	}
	return s.updateMetaLocked(name, meta)
}

// exchangeTLSDir builds the context's TLS directory anew, with files over
// the current ones, under $DOCKER_CONFIG/tls/tmp (the same file system, and
// outside the context store, whose listing would take a stray directory for
// an endpoint), then exchanges it with the live one and removes the old.
// The caller holds the context's lock, so a staging directory of this
// context left by a crash is stale and removed first.
func (s *Store) exchangeTLSDir(c *Context, files map[string][]byte) error {
	tmpRoot := filepath.Join(s.configDir, "tls", "tmp")
	if err := fsutil.MkdirPrivate(tmpRoot); err != nil {
		return err
	}
	// '@' cannot occur in a context name, so the pattern is this context's alone.
	prefix := "renew@" + c.Name + "@"
	stale, _ := filepath.Glob(filepath.Join(tmpRoot, prefix+"*"))
	for _, d := range stale {
		_ = os.RemoveAll(d)
	}
	staging, err := os.MkdirTemp(tmpRoot, prefix)
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging) // after the exchange: the old files
	for _, f := range c.Files {
		data, ok := files[f]
		if !ok {
			if data, err = os.ReadFile(filepath.Join(c.TLSDir, f)); err != nil {
				return err
			}
		}
		if err := fsutil.WriteFile(filepath.Join(staging, f), data, fsutil.PrivateFile, false); err != nil {
			return err
		}
	}
	if fi, err := os.Stat(c.TLSDir); err == nil {
		_ = os.Chmod(staging, fi.Mode().Perm())
	}
	return fsutil.Exchange(staging, c.TLSDir)
}

// UpdateMeta rewrites the x-docker-tls field of a managed context, leaving
// its endpoint, description and TLS files as they are.
func (s *Store) UpdateMeta(name string, meta Meta) error {
	release, err := s.lock(name)
	if err != nil {
		return err
	}
	defer release()
	return s.updateMetaLocked(name, meta)
}

func (s *Store) updateMetaLocked(name string, meta Meta) error {
	md, err := s.s.GetMetadata(name)
	if err != nil {
		return fmt.Errorf("context %q: %w", name, ErrNotFound)
	}
	dc, err := command.GetDockerContext(md)
	if err != nil {
		return err
	}
	if _, ok := dc.AdditionalFields[Field]; !ok {
		return fmt.Errorf("context %q was not created by docker tls", name)
	}
	meta.Version = 1
	dc.AdditionalFields[Field] = meta
	md.Metadata = dc
	return s.s.CreateOrUpdate(md)
}

// Remove deletes a context and its TLS files.
func (s *Store) Remove(name string) error {
	release, err := s.lock(name)
	if err != nil {
		return err
	}
	defer release()
	if _, err := s.Get(name); err != nil {
		return err
	}
	return s.s.Remove(name)
}

// ParseHost checks an engine endpoint as users type it and returns it in
// canonical form tcp://HOST:PORT. A missing port becomes 2376, Docker's TLS
// port. warning is non-empty for legal but suspicious endpoints.
func ParseHost(raw string) (host string, warning string, err error) {
	if raw == "" {
		return "", "", errors.New("--host is required: tcp://HOST:2376")
	}
	s := raw
	if !strings.Contains(s, "://") {
		return "", "", fmt.Errorf("host %q needs a scheme: tcp://%s", raw, strings.TrimSuffix(s, "/"))
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("host %q is not a valid URL: %w", raw, err)
	}
	switch u.Scheme {
	case "tcp":
	case "https":
		u.Scheme = "tcp"
	default:
		return "", "", fmt.Errorf("host %q: TLS contexts need tcp://HOST:PORT (a %s:// endpoint does not use TLS certificates)", raw, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return "", "", fmt.Errorf("host %q: give only tcp://HOST:PORT", raw)
	}
	hostname := u.Hostname()
	if hostname == "" {
		return "", "", fmt.Errorf("host %q has no host name", raw)
	}
	port := u.Port()
	if port == "" {
		port = "2376"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("host %q: port %q is not a TCP port", raw, port)
	}
	if n == 2375 {
		warning = "port 2375 is Docker's plain-text port by convention; an engine with TLS normally listens on 2376"
	}
	return "tcp://" + net.JoinHostPort(hostname, port), warning, nil
}
