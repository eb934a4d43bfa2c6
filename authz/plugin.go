package authz

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/docker/go-plugins-helpers/sdk"

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
	peers peerCache
}

var _ authorization.Plugin = (*Plugin)(nil)

// AuthZReq judges a request before dockerd handles it. dockerd's calls
// take Handler's own decoding (serveAuthZReq); this is the helper's
// interface, for a caller that has a decoded request.
func (p *Plugin) AuthZReq(r authorization.Request) authorization.Response {
	certs := make([]*x509.Certificate, 0, len(r.RequestPeerCertificates))
	for _, pc := range r.RequestPeerCertificates {
		if pc != nil {
			c := x509.Certificate(*pc)
			certs = append(certs, &c)
		}
	}
	return p.judge(Call{Method: r.RequestMethod, URI: r.RequestURI, Body: r.RequestBody, Headers: r.RequestHeaders, Certs: certs})
}

// unreadable is the refusal of a request that did not decode: it must not
// pass as a local call, which is what a request without certificates is.
const unreadable = "docker-tls: the authorization request could not be read, so the call is refused"

func (p *Plugin) judge(c Call) authorization.Response {
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	if c.Method == "" || c.URI == "" {
		return authorization.Response{Msg: unreadable}
	}
	if i := strings.Index(c.URI, ProbeParam+"="); i >= 0 {
		nonce := strings.SplitN(c.URI[i+len(ProbeParam)+1:], "&", 2)[0]
		p.probe.Store(nonce[:min(len(nonce), 64)])
	}
	cfg, err := p.Config.Current()
	if err != nil {
		return authorization.Response{Allow: false, Msg: "docker-tls: the engine's policy cannot be read (" + err.Error() + "), so every call is refused"}
	}
	dec := p.Decider.Decide(cfg, c, now)
	if p.Audit != nil {
		p.Audit(dec)
	}
	if !dec.Allow {
		return authorization.Response{Allow: false, Msg: dec.Message}
	}
	return authorization.Response{Allow: true}
}

// wireRequest is the part of dockerd's AuthZReq the plugin reads. The
// client's certificates stay as dockerd sent them (JSON strings, base64 of
// PEM): a client sends the same one with every call, so it is parsed once
// and looked up after (peerCache).
type wireRequest struct {
	RequestMethod           string
	RequestURI              string `json:"RequestUri"`
	RequestBody             []byte
	RequestHeaders          map[string]string
	RequestPeerCertificates []json.RawMessage
}

// serveAuthZReq decodes dockerd's AuthZReq and judges it. Anything that
// does not decode, a certificate included, is refused: the helper's own
// decoding went on with what it had read so far.
func (p *Plugin) serveAuthZReq(w http.ResponseWriter, r *http.Request) {
	var req wireRequest
	res := authorization.Response{Msg: unreadable}
	if err := json.NewDecoder(r.Body).Decode(&req); err == nil {
		if certs, err := p.peers.parse(req.RequestPeerCertificates); err == nil {
			res = p.judge(Call{Method: req.RequestMethod, URI: req.RequestURI, Body: req.RequestBody, Headers: req.RequestHeaders, Certs: certs})
		}
	}
	_, _ = io.Copy(io.Discard, r.Body)
	sdk.EncodeResponse(w, res, false)
}

// peerCache holds parsed client certificates by their wire form. Parsing
// the caller's certificate was a fifth of the plugin's work per call
// (BenchmarkPluginOverSocket), for the same few certificates again and
// again. Bounded: full, it starts over.
type peerCache struct {
	mu sync.RWMutex
	m  map[string]*x509.Certificate
}

const peerCacheMax = 1024

func (c *peerCache) parse(raws []json.RawMessage) ([]*x509.Certificate, error) {
	certs := make([]*x509.Certificate, 0, len(raws))
	for _, raw := range raws {
		cert, err := c.one(raw)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

func (c *peerCache) one(raw json.RawMessage) (*x509.Certificate, error) {
	c.mu.RLock()
	cert := c.m[string(raw)]
	c.mu.RUnlock()
	if cert != nil {
		return cert, nil
	}
	var pemBytes []byte
	if err := json.Unmarshal(raw, &pemBytes); err != nil {
		return nil, err
	}
	b, _ := pem.Decode(pemBytes)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("a peer certificate that is not PEM")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= peerCacheMax {
		c.m = make(map[string]*x509.Certificate)
	}
	c.m[string(raw)] = cert
	c.mu.Unlock()
	return cert, nil
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

	mu      sync.Mutex
	stamp   fileStamp
	last    *Config
	checked time.Time
}

// Recheck is how long the plugin trusts what it read of its files (policy,
// revocation lists, CA bundle) before it looks at them again on an API
// call. Looking on every call was a tenth of its CPU on a busy engine.
// What docker-tls changes takes effect at once, not within Recheck: policy
// set and a pushed list end by asking the plugin's status, which looks
// now, and so does a pull.
const Recheck = time.Second

// Current is the policy in force, the file looked at again when it was
// last looked at Recheck ago or more.
func (f *ConfigFile) Current() (*Config, error) { return f.current(false) }

// Fresh is the policy in force, the file looked at now.
func (f *ConfigFile) Fresh() (*Config, error) { return f.current(true) }

func (f *ConfigFile) current(now bool) (*Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !now && f.last != nil && time.Since(f.checked) < Recheck {
		return f.last, nil
	}
	f.checked = time.Now()
	fi, err := os.Stat(f.Path)
	if err != nil {
		if f.last != nil {
			return f.last, nil
		}
		return nil, err
	}
	stamp := stampOf(fi)
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

// fileStamp tells a changed file from the one read: it is compared on
// every API call, so it is a value, not a formatted string.
type fileStamp struct{ mtime, size int64 }

func stampOf(fi os.FileInfo) fileStamp {
	if fi == nil {
		return fileStamp{}
	}
	return fileStamp{fi.ModTime().UnixNano(), fi.Size()}
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
