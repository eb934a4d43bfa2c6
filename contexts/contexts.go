// Package contexts owns docker-tls's view of the Docker context store: it
// creates, reads, locks and removes contexts only through docker/cli's own
// store (never by writing meta.json), and marks the contexts docker-tls
// manages with an additional "x-docker-tls" field that records where the
// client key lives and what the certificate is.
package contexts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/context/docker"
	"github.com/docker/cli/cli/context/store"

	"github.com/docker-tls/docker-tls/internal/journal"
	"github.com/docker-tls/docker-tls/keystore"
)

// Field is the additional metadata field that marks a docker-tls context.
const Field = "x-docker-tls"

// The TLS files of the docker endpoint, as the docker CLI reads them.
const (
	CAFile   = "ca.pem"
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
)

// DamagedError is a context whose stored metadata cannot be read. Replace
// says that the command that met it would replace it with --force.
type DamagedError struct {
	Name    string
	Err     error
	Replace bool
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("context %s is damaged (%v)", e.Name, e.Err)
}
func (e *DamagedError) Unwrap() error { return e.Err }

// KeyFileError is an unlocked context whose key file is not the key of
// its certificate (or is missing): unlocking it again, with force,
// rewrites the file from the key store.
type KeyFileError struct {
	Name string
	Err  error
}

func (e *KeyFileError) Error() string { return e.Err.Error() }

func (e *KeyFileError) Unwrap() error { return e.Err }

// AgentModeError is a lock or unlock of a context in agent mode, which
// has no key file.
type AgentModeError struct{ Name string }

func (e *AgentModeError) Error() string {
	return fmt.Sprintf("context %q is in agent mode: it has no key file to lock or unlock", e.Name)
}

// NotManagedError is a context that docker-tls did not create.
type NotManagedError struct{ Name string }

func (e *NotManagedError) Error() string {
	return fmt.Sprintf("context %q was not created by docker tls (no %s field)", e.Name, Field)
}

// ErrNotFound is returned for an unknown context.
var ErrNotFound = errors.New("no such context")

// ErrExists is returned when a context exists and replacing it was not
// asked for, as `context "NAME" already exists`.
var ErrExists = errors.New("already exists")

// ErrNotFromCatalog is a context that a catalog would replace but that
// was not made from that catalog.
var ErrNotFromCatalog = errors.New("context exists and was not made from this catalog")

// Meta is what docker-tls records in a context's x-docker-tls field: where
// the client key lives and a summary of the certificate, so that listing a
// thousand contexts needs no certificate parsing.
type Meta struct {
	Version  int    `json:"version"`
	KeyStore string `json:"keyStore"`
	KeyID    string `json:"keyID"`
	KeyType  string `json:"keyType,omitempty"`
	CA       string `json:"ca,omitempty"`    // local CA name, if issued by one
	CAURL    string `json:"caURL,omitempty"` // remote CA it enrolled with, if any
	// SignIn says the certificate came from a sign-in with the CA
	// service's identity provider: once it expires, the person signs in
	// again (docker tls renew NAME), no token needed.
	SignIn bool `json:"signIn,omitempty"`
	// Catalog is the CA service whose catalog of engines the context was
	// made from (docker tls enroll --engines): a later run may update it;
	// it never touches a context without it.
	Catalog       string `json:"catalog,omitempty"`
	CAFingerprint string `json:"caFingerprint"`
	Subject       string `json:"subject"`
	// Groups are the certificate's groups (its Organization values).
	Groups   []string  `json:"groups,omitempty"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"notAfter"`
	Imported bool      `json:"imported,omitempty"`
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

// Store is the Docker context store under a DOCKER_CONFIG directory, with
// the key stores that hold its contexts' keys and the journal that every
// change to both goes through.
type Store struct {
	configDir string
	s         *store.ContextStore
	keys      keystore.Stores
	j         *journal.Journal
}

// Open returns the context store of configDir ($DOCKER_CONFIG) with its
// own key stores and journal: enough for reading, and for changes when no
// other store shares the journal (New does that).
func Open(configDir string) *Store {
	keys := keystore.Stores{Dir: filepath.Join(configDir, "tls", "keys")}
	return New(configDir, keys, journal.New(filepath.Join(configDir, "tls"), keys.TempDir()))
}

// New returns the context store of configDir, changing keys in keys, and
// registers its recovery with j.
func New(configDir string, keys keystore.Stores, j *journal.Journal) *Store {
	s := &Store{configDir: configDir, s: store.New(filepath.Join(configDir, "contexts"), command.DefaultContextStoreConfig()), keys: keys, j: j}
	j.Handle(owner, s.recoverEntry)
	return s
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

// Get reads one context.
func (s *Store) Get(name string) (*Context, error) {
	md, err := s.s.GetMetadata(name)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("context %q: %w", name, ErrNotFound)
		}
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // docker/cli's own "context NAME:" prefix
		}
		return nil, &DamagedError{Name: name, Err: err}
	}
	return s.fromMetadata(md)
}

// ExpiringWithin lists the contexts docker tls made whose certificate
// expires within d from now (or has expired); contexts that do not read
// are left out.
func (s *Store) ExpiringWithin(d time.Duration) ([]*Context, error) {
	list, _, err := s.List()
	if err != nil {
		return nil, err
	}
	var out []*Context
	for _, c := range list {
		if c.Managed() && time.Until(c.TLS.NotAfter) <= d {
			out = append(out, c)
		}
	}
	return out, nil
}

// List reads every context in the store (not the virtual "default" one),
// sorted by name. Contexts that cannot be read are returned in errs, keyed
// by name, so one damaged meta.json never hides the others (docker/cli's
// own listing stops at the first).
func (s *Store) List() ([]*Context, map[string]error, error) {
	mds, err := s.s.List()
	if err != nil {
		return s.listOneByOne()
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

// listOneByOne reads the contexts one directory at a time. A damaged
// meta.json's context name is recovered when its text still holds one that
// hashes to its directory; otherwise the error is keyed by the file.
func (s *Store) listOneByOne() ([]*Context, map[string]error, error) {
	root := filepath.Join(s.configDir, "contexts", "meta")
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, nil, fmt.Errorf("list contexts: %w", err)
	}
	var out []*Context
	errs := map[string]error{}
	for _, e := range entries {
		file := filepath.Join(root, e.Name(), "meta.json")
		data, err := os.ReadFile(file)
		if err != nil {
			continue // not a context directory
		}
		name := nameIn(data, e.Name())
		if name == "" {
			errs[file] = fmt.Errorf("%s is damaged and names no context: move it out of the way (it holds no key)", file)
			continue
		}
		c, err := s.Get(name)
		if err != nil {
			errs[name] = err
			continue
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Context) int { return strings.Compare(a.Name, b.Name) })
	return out, errs, nil
}

// nameField finds a context name in a meta.json that JSON cannot read;
// compiled only then (no start-up work on every run).
const nameField = `"Name"\s*:\s*"([^"\\]{1,200})"`

// nameIn finds the context name in a meta.json, damaged or not, and
// accepts it only if it is the name of directory dir (its SHA-256).
func nameIn(data []byte, dir string) string {
	var md struct{ Name string }
	if json.Unmarshal(data, &md) != nil || md.Name == "" {
		m := regexp.MustCompile(nameField).FindSubmatch(data)
		if m == nil {
			return ""
		}
		md.Name = string(m[1])
	}
	if sum := sha256.Sum256([]byte(md.Name)); hex.EncodeToString(sum[:]) != dir {
		return ""
	}
	return md.Name
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

// PEMs are the CA bundle a context trusts and its certificate, from its
// files or, for an agent-mode context, its metadata.
func (s *Store) PEMs(c *Context) (caPEM, certPEM []byte, err error) {
	if c.AgentMode() {
		return []byte(c.TLS.CAPEM), []byte(c.TLS.CertPEM), nil
	}
	if caPEM, err = s.ReadFile(c.Name, CAFile); err != nil {
		return nil, nil, err
	}
	if certPEM, err = s.ReadFile(c.Name, CertFile); err != nil {
		return nil, nil, err
	}
	return caPEM, certPEM, nil
}

// Strays are temporary files that the docker CLI's own writes, or older
// versions of docker tls, could leave in context directories: a full
// scan, for prune only.
func (s *Store) Strays() []string {
	var out []string
	for _, g := range []string{filepath.Join("tls", "*", "*", ".tmp-*"), filepath.Join("meta", "*", ".tmp-*")} {
		m, _ := filepath.Glob(filepath.Join(s.configDir, "contexts", g))
		out = append(out, m...)
	}
	return out
}

// SubjectCN is the CN of a client's subject, "CN=alice,O=ops" (the groups
// have their own column), unescaped; a subject that does not start with a
// CN is shown whole.
func SubjectCN(dn string) string {
	rest, ok := strings.CutPrefix(dn, "CN=")
	if !ok {
		return dn
	}
	var b strings.Builder
	for i := 0; i < len(rest); i++ {
		switch {
		case rest[i] == '\\' && i+1 < len(rest):
			i++
		case rest[i] == ',':
			return b.String()
		}
		b.WriteByte(rest[i])
	}
	return b.String()
}

// Holder is who a context's client certificate says it is.
type Holder struct {
	User   string
	Groups []string
}

// IdentitiesFor are the holders of the docker-tls contexts that reach
// the endpoint host (directly, or through the agent) with a certificate of
// the CA of fingerprint caFP, and of the context named, each once.
func (s *Store) IdentitiesFor(name, host, caFP string) ([]Holder, error) {
	all, _, err := s.List()
	if err != nil {
		return nil, err
	}
	var ids []Holder
	for _, c := range all {
		if !c.Managed() || c.TLS.CAFingerprint != caFP {
			continue
		}
		if c.Name != name && c.Host != host && c.TLS.Remote != host {
			continue
		}
		id := Holder{User: SubjectCN(c.TLS.Subject), Groups: c.TLS.Groups}
		if !slices.ContainsFunc(ids, func(o Holder) bool { return o.User == id.User && slices.Equal(o.Groups, id.Groups) }) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
