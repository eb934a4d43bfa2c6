package authz

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
)

// An engine holds one revocation list per CA it trusts (two during a
// rotation), as PEM "X509 CRL" blocks in one file. A list is taken only when
// a trusted CA signed it and its number is not below the one held for that
// CA; an expired list still counts (a revocation is never undone by a
// missed update), and its age is reported.

// CRLInfo describes a list held.
type CRLInfo struct {
	CA         string    `json:"ca"`
	Number     string    `json:"number"`
	ThisUpdate time.Time `json:"thisUpdate"`
	NextUpdate time.Time `json:"nextUpdate"`
	Revoked    int       `json:"revoked"`
}

type heldCRL struct {
	der []byte
	crl *x509.RevocationList
	key string // the signing CA's key identifier
	ca  string
}

func (h heldCRL) info() CRLInfo {
	return CRLInfo{CA: h.ca, Number: h.crl.Number.String(), ThisUpdate: h.crl.ThisUpdate.UTC(), NextUpdate: h.crl.NextUpdate.UTC(),
		Revoked: len(h.crl.RevokedCertificateEntries)}
}

// caKey identifies a CA the way its certificates name it: by key
// identifier, else by subject.
func caKey(ca *x509.Certificate) string {
	if len(ca.SubjectKeyId) > 0 {
		return hex.EncodeToString(ca.SubjectKeyId)
	}
	sum := sha256.Sum256(ca.RawSubject)
	return "subject:" + hex.EncodeToString(sum[:])
}

func issuerKey(leaf *x509.Certificate) string {
	if len(leaf.AuthorityKeyId) > 0 {
		return hex.EncodeToString(leaf.AuthorityKeyId)
	}
	sum := sha256.Sum256(leaf.RawIssuer)
	return "subject:" + hex.EncodeToString(sum[:])
}

// parseCRLs reads PEM CRL blocks, each checked against trusted.
func parseCRLs(data []byte, trusted []*x509.Certificate) ([]heldCRL, error) {
	var out []heldCRL
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return nil, errors.New("the file holds something other than PEM CRLs")
			}
			return out, nil
		}
		if b.Type != "X509 CRL" {
			return nil, fmt.Errorf("a PEM block of type %q where a CRL was expected", b.Type)
		}
		crl, ca, err := pki.CheckCRLSignature(b.Bytes, trusted)
		if err != nil {
			return nil, err
		}
		if crl.Number == nil {
			return nil, errors.New("the CRL has no number, so a newer one cannot be told from an older one")
		}
		out = append(out, heldCRL{der: b.Bytes, crl: crl, key: caKey(ca), ca: ca.Subject.CommonName})
	}
}

// MergeCRLs takes incoming lists (PEM) into held ones: each must be signed
// by a trusted CA and not older, by number, than the list held for that
// CA. Held lists no trusted CA signs any more (a CA rotated out) are
// dropped. It returns the lists to hold and whether they changed.
func MergeCRLs(held, incoming []byte, trusted []*x509.Certificate) ([]byte, bool, error) {
	in, err := parseCRLs(incoming, trusted)
	if err != nil {
		return nil, false, err
	}
	if len(in) == 0 {
		return nil, false, errors.New("no CRL given")
	}
	var have []heldCRL
	for rest := held; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if h, err := parseCRLs(pem.EncodeToMemory(b), trusted); err == nil {
			have = append(have, h...)
		}
	}
	changed := false
	for _, n := range in {
		i := indexOfCA(have, n.key)
		switch {
		case i < 0:
			have = append(have, n)
			changed = true
		case n.crl.Number.Cmp(have[i].crl.Number) < 0:
			return nil, false, fmt.Errorf("the CRL of %s is older (number %s) than the one held (number %s)", n.ca, n.crl.Number, have[i].crl.Number)
		case n.crl.Number.Cmp(have[i].crl.Number) > 0:
			have[i] = n
			changed = true
		}
	}
	var b bytes.Buffer
	for _, h := range have {
		b.Write(pki.EncodeCRL(h.der))
	}
	if !bytes.Equal(b.Bytes(), held) {
		changed = true
	}
	return b.Bytes(), changed, nil
}

func indexOfCA(list []heldCRL, key string) int {
	for i, h := range list {
		if h.key == key {
			return i
		}
	}
	return -1
}

// InstallCRL merges incoming lists into the file at path (MergeCRLs,
// against the CAs in caPath), under lockPath, and writes it whole with one
// rename when it changed.
func InstallCRL(path, caPath, lockPath string, incoming []byte) (bool, []CRLInfo, error) {
	trusted, err := readCAs(caPath)
	if err != nil {
		return false, nil, err
	}
	unlock, err := fsutil.Lock(lockPath, 30*time.Second)
	if err != nil {
		return false, nil, err
	}
	defer unlock()
	held, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, nil, err
	}
	merged, changed, err := MergeCRLs(held, incoming, trusted)
	if err != nil {
		return false, nil, err
	}
	if changed {
		if err := fsutil.WriteFile(path, merged, fsutil.PublicFile, true); err != nil {
			return false, nil, err
		}
	}
	list, _ := parseCRLs(merged, trusted)
	infos := make([]CRLInfo, len(list))
	for i, h := range list {
		infos[i] = h.info()
	}
	return changed, infos, nil
}

// TakePushedCRL installs a pushed list (InstallCRL) and, when it changed,
// asks the plugin on socket for its status, which puts the list in force
// before the push returns. A plugin that does not answer takes it when it
// starts, or on a call within Recheck.
func TakePushedCRL(path, caPath, lockPath, socket string, incoming []byte) (bool, []CRLInfo, error) {
	changed, held, err := InstallCRL(path, caPath, lockPath, incoming)
	if err != nil || !changed {
		return changed, held, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = QueryStatus(ctx, socket)
	return changed, held, nil
}

func readCAs(path string) ([]*x509.Certificate, error) {
	data, err := fsutil.ReadSmall(path, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("the engine's CAs: %w", err)
	}
	cas, err := pki.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("the engine's CAs (%s): %w", path, err)
	}
	return cas, nil
}

// CRLFile is the lists the plugin enforces: read again when the file
// changes; a list that no longer checks, or is older than the one in
// force for its CA, is refused (told once) and the last good one stays.
type CRLFile struct {
	Path     string
	Rejected func(error)

	mu    sync.Mutex
	stamp crlStamp
	// checked is when the files were last looked at, for the CA bundle
	// checkedFor.
	checked    time.Time
	checkedFor string
	held       map[string]heldCRL
	revoked    map[string]map[string]bool // CA key -> serial (hex)
}

// Revoked says whether the CA that issued leaf revoked it. caPath is the
// engine's CA bundle as the policy in force names it ("": nothing is
// revoked). The files are looked at again after Recheck.
func (f *CRLFile) Revoked(caPath string, leaf *x509.Certificate) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reload(caPath, false)
	return f.revoked[issuerKey(leaf)][leaf.SerialNumber.Text(16)]
}

// Reload looks at the files now, rather than within Recheck.
func (f *CRLFile) Reload(caPath string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reload(caPath, true)
}

// Held describes the lists in force, the files looked at now.
func (f *CRLFile) Held(caPath string) []CRLInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reload(caPath, true)
	out := make([]CRLInfo, 0, len(f.held))
	for _, h := range f.held {
		out = append(out, h.info())
	}
	return out
}

// crlStamp is the lists' file and the CA bundle they were checked against,
// as read.
type crlStamp struct {
	crl    fileStamp
	caPath string
	ca     fileStamp
}

func (f *CRLFile) reload(caPath string, now bool) {
	if caPath == "" || !now && caPath == f.checkedFor && time.Since(f.checked) < Recheck {
		return
	}
	f.checked, f.checkedFor = time.Now(), caPath
	fi, err := os.Stat(f.Path)
	if err != nil {
		return // none yet, or gone: what is in force stays
	}
	ci, _ := os.Stat(caPath)
	stamp := crlStamp{crl: stampOf(fi), caPath: caPath, ca: stampOf(ci)}
	if stamp == f.stamp {
		return
	}
	f.stamp = stamp
	err = f.load(caPath)
	if err != nil && f.Rejected != nil {
		f.Rejected(err)
	}
}

func (f *CRLFile) load(caPath string) error {
	trusted, err := readCAs(caPath)
	if err != nil {
		return err
	}
	data, err := fsutil.ReadSmall(f.Path, 64<<20)
	if err != nil {
		return err
	}
	list, err := parseCRLs(data, trusted)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if f.held == nil {
		f.held, f.revoked = map[string]heldCRL{}, map[string]map[string]bool{}
	}
	var errs []error
	for _, n := range list {
		if old, ok := f.held[n.key]; ok && n.crl.Number.Cmp(old.crl.Number) < 0 {
			errs = append(errs, fmt.Errorf("%s: the CRL of %s is older (number %s) than the one in force (number %s)", f.Path, n.ca, n.crl.Number, old.crl.Number))
			continue
		}
		serials := make(map[string]bool, len(n.crl.RevokedCertificateEntries))
		for _, e := range n.crl.RevokedCertificateEntries {
			serials[e.SerialNumber.Text(16)] = true
		}
		f.held[n.key], f.revoked[n.key] = n, serials
	}
	return errors.Join(errs...)
}

// Puller fetches the revocation list from the CA service (Config's
// CRLURL) every interval and installs it (InstallCRL): the engine learns of
// a revocation within one interval without anyone reaching it.
type Puller struct {
	Config            *ConfigFile
	CRLPath, LockPath string
	// CRLs, when set, takes a changed list at once rather than within
	// Recheck.
	CRLs *CRLFile
	// Logf is told what changed, and each new kind of failure once.
	Logf func(format string, args ...any)
}

// Run pulls until ctx ends: at once, then every interval, and again
// whenever the policy changes (a new URL or interval takes effect without
// waiting out the old one).
func (p *Puller) Run(ctx context.Context) {
	var (
		last     string
		digest   string
		pulledAt time.Time
	)
	for {
		if cfg, err := p.Config.Current(); err == nil && cfg.CRLURL != "" {
			interval, _ := cfg.PullInterval()
			if cfg.Digest != digest || time.Since(pulledAt) >= interval {
				digest, pulledAt = cfg.Digest, time.Now()
				last = p.pull(ctx, cfg, last)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// pull pulls once and logs what changed, or a failure unlike the last.
func (p *Puller) pull(ctx context.Context, cfg *Config, last string) string {
	changed, infos, err := PullCRL(ctx, cfg, p.CRLPath, p.LockPath)
	if err != nil {
		if err.Error() != last {
			p.Logf("the revocation list from %s was not taken, the one held stays in force: %v", cfg.CRLURL, err)
		}
		return err.Error()
	}
	if changed {
		if p.CRLs != nil {
			p.CRLs.Reload(cfg.CAs)
		}
		for _, i := range infos {
			p.Logf("revocation list of %s: number %s, %d revoked", i.CA, i.Number, i.Revoked)
		}
	}
	return ""
}

// PullCRL fetches cfg's CRLURL, over TLS verified with the engine's CAs
// (the CA service's certificate is its CA's), and installs what came.
func PullCRL(ctx context.Context, cfg *Config, crlPath, lockPath string) (bool, []CRLInfo, error) {
	trusted, err := readCAs(cfg.CAs)
	if err != nil {
		return false, nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range trusted {
		pool.AddCert(c)
	}
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.CRLURL, nil)
	if err != nil {
		return false, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return false, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, nil, fmt.Errorf("%s answered %s", cfg.CRLURL, resp.Status)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(body), []byte("-----BEGIN")) {
		body = pki.EncodeCRL(body)
	}
	return InstallCRL(crlPath, cfg.CAs, lockPath, body)
}
