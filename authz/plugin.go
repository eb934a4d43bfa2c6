package authz

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"

	"github.com/docker-tls/docker-tls/internal/fsutil"
)

// Plugin answers dockerd's authorization requests (Docker's own helper,
// github.com/docker/go-plugins-helpers/authorization, speaks the protocol).
type Plugin struct {
	Decider *Decider
	Config  *ConfigFile
	// CRLs are the revocation lists in force, for the status; nil: none.
	CRLs *CRLFile
	// Audit receives every decision; nil keeps none.
	Audit func(Decision)
	Now   func() time.Time

	// probe is the last probe nonce a call carried (see Consulted).
	probe atomic.Value
}

var _ authorization.Plugin = (*Plugin)(nil)

// AuthZReq judges a request before dockerd handles it.
func (p *Plugin) AuthZReq(r authorization.Request) authorization.Response {
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	// The helper goes on with an empty request when dockerd's did not
	// decode: that must not pass as a local call.
	if r.RequestMethod == "" || r.RequestURI == "" {
		return authorization.Response{Allow: false, Msg: "docker-tls: the authorization request could not be read, so the call is refused"}
	}
	if i := strings.Index(r.RequestURI, ProbeParam+"="); i >= 0 {
		nonce := strings.SplitN(r.RequestURI[i+len(ProbeParam)+1:], "&", 2)[0]
		p.probe.Store(nonce[:min(len(nonce), 64)])
	}
	cfg, err := p.Config.Current()
	if err != nil {
		return authorization.Response{Allow: false, Msg: "docker-tls: the engine's policy cannot be read (" + err.Error() + "), so every call is refused"}
	}
	certs := make([]*x509.Certificate, 0, len(r.RequestPeerCertificates))
	for _, pc := range r.RequestPeerCertificates {
		if pc != nil {
			c := x509.Certificate(*pc)
			certs = append(certs, &c)
		}
	}
	dec := p.Decider.Decide(cfg, Call{Method: r.RequestMethod, URI: r.RequestURI, Body: r.RequestBody, Headers: r.RequestHeaders, Certs: certs}, now)
	if p.Audit != nil {
		p.Audit(dec)
	}
	if !dec.Allow {
		return authorization.Response{Allow: false, Msg: dec.Message}
	}
	return authorization.Response{Allow: true}
}

// AuthZRes lets every answer through: the decision was made on the
// request.
func (p *Plugin) AuthZRes(authorization.Request) authorization.Response {
	return authorization.Response{Allow: true}
}

// ConfigFile is the policy file on the engine's host, read again when it
// changes. A file that does not parse or check is refused and the last
// good one stays in force.
type ConfigFile struct {
	Path string
	// Rejected is told why a changed file was not taken; nil: not told.
	Rejected func(error)

	mu    sync.Mutex
	stamp string
	last  *Config
}

// Current is the policy in force.
func (f *ConfigFile) Current() (*Config, error) {
	fi, err := os.Stat(f.Path)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		if f.last != nil {
			return f.last, nil
		}
		return nil, err
	}
	stamp := fmt.Sprintf("%d/%d", fi.ModTime().UnixNano(), fi.Size())
	if stamp == f.stamp && f.last != nil {
		return f.last, nil
	}
	cfg, err := ReadConfig(f.Path)
	if err != nil {
		f.stamp = stamp // told once per change, not once per call
		if f.Rejected != nil {
			f.Rejected(err)
		}
		if f.last != nil {
			return f.last, nil
		}
		return nil, err
	}
	f.stamp, f.last = stamp, cfg
	return cfg, nil
}

// ReadConfig reads and checks a policy file.
func ReadConfig(path string) (*Config, error) {
	data, err := fsutil.ReadSmall(path, 1<<20)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// DefaultCRLInterval is how often the plugin pulls the revocation list.
const DefaultCRLInterval = 30 * time.Second

// PullInterval is how often the list is pulled: CRLInterval, from 5s to
// 24h, or DefaultCRLInterval.
func (c *Config) PullInterval() (time.Duration, error) {
	if c.CRLInterval == "" {
		return DefaultCRLInterval, nil
	}
	d, err := time.ParseDuration(c.CRLInterval)
	if err != nil || d < 5*time.Second || d > 24*time.Hour {
		return 0, fmt.Errorf("crlInterval %q: give a duration from 5s to 24h", c.CRLInterval)
	}
	return d, nil
}

// ParseConfig reads and checks a policy file's contents.
func ParseConfig(data []byte) (*Config, error) {
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(data))
	// A key this version does not know is a policy it would not enforce
	// as written: refused, not ignored.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, err
	}
	if err := cfg.Policy.Check(); err != nil {
		return nil, err
	}
	if _, err := cfg.PullInterval(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	cfg.Digest = hex.EncodeToString(sum[:])
	return &cfg, nil
}

// AuditLog appends decisions to a file as JSON lines (0600), moving it to
// PATH.1 when it grows past MaxBytes. It is written on every API call, so
// the file stays open and its size is counted, not asked for each time.
type AuditLog struct {
	Path     string
	MaxBytes int64

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Write appends one decision.
func (l *AuditLog) Write(d Decision) error {
	line, err := json.Marshal(d)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil && l.MaxBytes > 0 && l.size+int64(len(line)) >= l.MaxBytes {
		l.f.Close()
		l.f = nil
		if err := os.Rename(l.Path, l.Path+".1"); err != nil {
			return err
		}
	}
	if l.f == nil {
		if err := l.open(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(line)
	l.size += int64(n)
	return err
}

func (l *AuditLog) open() error {
	if err := fsutil.MkdirPrivate(filepath.Dir(l.Path)); err != nil {
		return err
	}
	f, err := os.OpenFile(l.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, fsutil.PrivateFile)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Close closes the file.
func (l *AuditLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
