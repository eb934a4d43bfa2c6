package remoteca

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
)

// TokenPrefix starts every enrollment token.
const TokenPrefix = "DTLS1"

// Errors a token can be refused with. Each says what to do next.
var (
	ErrTokenUnknown  = errors.New("unknown or revoked enrollment token: ask for a new one (docker tls ca token)")
	ErrTokenExpired  = errors.New("the enrollment token has expired: ask for a new one (docker tls ca token)")
	ErrTokenUsed     = errors.New("the enrollment token has already been used: ask for a new one (docker tls ca token)")
	ErrTokenMismatch = errors.New("the request asks for more than the enrollment token allows")
	// ErrNeedName: neither the CSR nor the token names the client.
	ErrNeedName = errors.New("the CSR has no CN and the token does not name the client: give --client-name")
)

// ParsedToken is the text form of a token taken apart: the CA it pins and
// the secret that authorises one enrollment.
type ParsedToken struct {
	// Fingerprint is the hex SHA-256 of the CA certificate (lower case).
	Fingerprint string
	Secret      string
}

// ParseToken reads DTLS1-<CA SHA-256 hex>-<secret>.
func ParseToken(s string) (ParsedToken, error) {
	parts := strings.SplitN(strings.TrimSpace(s), "-", 3)
	if len(parts) != 3 || parts[0] != TokenPrefix {
		return ParsedToken{}, errors.New("not a docker-tls enrollment token (DTLS1-<fingerprint>-<secret>)")
	}
	fp, err := NormalizeFingerprint(parts[1])
	if err != nil {
		return ParsedToken{}, fmt.Errorf("enrollment token: %w", err)
	}
	if len(parts[2]) < 32 {
		return ParsedToken{}, errors.New("enrollment token: the secret is truncated")
	}
	return ParsedToken{Fingerprint: fp, Secret: parts[2]}, nil
}

// String is the token's text form.
func (p ParsedToken) String() string { return TokenPrefix + "-" + p.Fingerprint + "-" + p.Secret }

// NormalizeFingerprint accepts "sha256:AB:CD…", "AB:CD…" or "abcd…" and
// returns 64 lower-case hex digits.
func NormalizeFingerprint(s string) (string, error) {
	s = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	s = strings.ReplaceAll(s, ":", "")
	if len(s) != 64 {
		return "", fmt.Errorf("fingerprint %q is not a SHA-256 (64 hex digits)", s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("fingerprint %q is not hex", s)
	}
	return s, nil
}

// FingerprintHex is the SHA-256 of a certificate as 64 lower-case hex digits.
func FingerprintHex(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// Token is a stored token: never the secret, only its hash.
type Token struct {
	ID      string      `json:"id"`
	Hash    string      `json:"hash"`
	Profile pki.Profile `json:"profile"`
	CN      string      `json:"cn,omitempty"`
	SANs    []string    `json:"sans,omitempty"`
	Days    int         `json:"days,omitempty"`
	Created time.Time   `json:"created"`
	Expires time.Time   `json:"expires"`
	Uses    int         `json:"uses"`
	Used    int         `json:"used"`
	Revoked bool        `json:"revoked,omitempty"`
}

// Active reports whether the token can still be used at now.
func (t *Token) Active(now time.Time) bool {
	return !t.Revoked && now.Before(t.Expires) && t.Used < t.Uses
}

// TokenOptions describe a new token.
type TokenOptions struct {
	Profile pki.Profile
	CN      string
	SANs    []string
	Days    int
	TTL     time.Duration
	Uses    int
	Now     time.Time
}

// Tokens keeps a CA's enrollment tokens in a 0600 JSON file, hashed, under
// a lock shared by `ca serve` and `ca token`.
type Tokens struct {
	Path string
	// mu orders this process's own updates, so that concurrent requests
	// queue on a mutex rather than poll the file lock.
	mu sync.Mutex
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// New mints one token (see NewBatch).
func (s *Tokens) New(caRaw []byte, o TokenOptions) (string, *Token, error) {
	toks, ts, err := s.NewBatch(caRaw, o, 1)
	if err != nil {
		return "", nil, err
	}
	return toks[0], ts[0], nil
}

// NewBatch mints n tokens alike (each with its own secret) in one write
// of the store, and returns them as DTLS1-<fingerprint>-<secret> strings
// beside what is stored of each (a hash of the secret, never the secret).
func (s *Tokens) NewBatch(caRaw []byte, o TokenOptions, n int) ([]string, []*Token, error) {
	strs, toks, err := mint(caRaw, o, n)
	if err != nil {
		return nil, nil, err
	}
	now := toks[0].Created
	err = s.update(func(list []*Token) ([]*Token, error) {
		list = slices.DeleteFunc(list, func(x *Token) bool { return !x.Active(now) && now.Sub(x.Expires) > 7*24*time.Hour })
		return append(list, toks...), nil
	})
	if err != nil {
		return nil, nil, err
	}
	return strs, toks, nil
}

// CheckTokenOptions says whether n tokens with o can be minted, before
// any store is touched, and puts o's SANs in their canonical form.
func CheckTokenOptions(o *TokenOptions, n int) error {
	if n < 1 || n > 10000 {
		return fmt.Errorf("--count %d: give 1 to 10000", n)
	}
	if o.Profile != pki.ClientProfile && o.Profile != pki.ServerProfile {
		return fmt.Errorf("unknown profile %q: use client or server", o.Profile)
	}
	if o.Profile == pki.ServerProfile && len(o.SANs) == 0 {
		return errors.New("a server token needs --san: the names the engine's certificate may carry")
	}
	if len(o.SANs) > 0 {
		sans, _, err := pki.ParseSANs(o.SANs)
		if err != nil {
			return err
		}
		o.SANs = sans.Strings()
	}
	if o.TTL <= 0 || o.TTL > 30*24*time.Hour {
		return fmt.Errorf("--ttl %s: give a duration from 1s to 720h", o.TTL)
	}
	if o.Uses < 1 || o.Uses > 10000 {
		return fmt.Errorf("--uses %d: give 1 to 10000", o.Uses)
	}
	return nil
}

// mint checks the options and makes n tokens: the strings to hand out and
// what a store keeps of each.
func mint(caRaw []byte, o TokenOptions, n int) ([]string, []*Token, error) {
	if err := CheckTokenOptions(&o, n); err != nil {
		return nil, nil, err
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	fp := FingerprintHex(caRaw)
	strs := make([]string, n)
	toks := make([]*Token, n)
	for i := range toks {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, nil, err
		}
		secret := base64.RawURLEncoding.EncodeToString(raw)
		h := hashSecret(secret)
		toks[i] = &Token{ID: h[:12], Hash: h, Profile: o.Profile, CN: o.CN, SANs: o.SANs, Days: o.Days,
			Created: o.Now.UTC(), Expires: o.Now.Add(o.TTL).UTC(), Uses: o.Uses}
		strs[i] = ParsedToken{Fingerprint: fp, Secret: secret}.String()
	}
	return strs, toks, nil
}

// Request is what an enrollment asks the token to cover.
type Request struct {
	Profile pki.Profile
	CN      string
	SANs    pki.SANs
}

// Consume checks secret and req against the stored tokens and, if a token
// allows it, counts one use and returns the token. The secret is compared
// by hash in constant time; a request the token does not allow is refused
// without spending the token.
func (s *Tokens) Consume(secret string, req Request, now time.Time) (*Token, error) {
	want := hashSecret(secret)
	var found *Token
	err := s.update(func(list []*Token) ([]*Token, error) {
		for _, t := range list {
			if subtle.ConstantTimeCompare([]byte(t.Hash), []byte(want)) == 1 {
				found = t
			}
		}
		if err := found.consumable(req, now); err != nil {
			return nil, err
		}
		found.Used++
		return list, nil
	})
	if err != nil {
		return nil, err
	}
	return found, nil
}

// consumable says whether t (nil: no such token) may be used now for req.
func (t *Token) consumable(req Request, now time.Time) error {
	switch {
	case t == nil || t.Revoked:
		return ErrTokenUnknown
	case !now.Before(t.Expires):
		return ErrTokenExpired
	case t.Used >= t.Uses:
		return ErrTokenUsed
	}
	return t.allows(req)
}

func (t *Token) allows(req Request) error {
	if req.Profile != "" && req.Profile != t.Profile {
		return fmt.Errorf("%w: it is for a %s certificate, not %s", ErrTokenMismatch, t.Profile, req.Profile)
	}
	if req.Profile == pki.ClientProfile && t.CN == "" && req.CN == "" {
		return ErrNeedName
	}
	if t.CN != "" && req.CN != "" && req.CN != t.CN {
		return fmt.Errorf("%w: it is for CN %q, the request asks for %q", ErrTokenMismatch, t.CN, req.CN)
	}
	allowed, _, _ := pki.ParseSANs(t.SANs)
	for _, n := range req.SANs.Strings() {
		if !slices.Contains(allowed.Strings(), n) {
			return fmt.Errorf("%w: it does not allow the name %s", ErrTokenMismatch, n)
		}
	}
	return nil
}

// List returns every stored token.
func (s *Tokens) List() ([]*Token, error) {
	return s.read()
}

// Revoke marks a token (by id or unique id prefix) unusable.
func (s *Tokens) Revoke(id string) (*Token, error) {
	var hit *Token
	err := s.update(func(list []*Token) ([]*Token, error) {
		for _, t := range list {
			if id != "" && strings.HasPrefix(t.ID, id) {
				if hit != nil {
					return nil, fmt.Errorf("token id %q is ambiguous: give more of it", id)
				}
				hit = t
			}
		}
		if hit == nil {
			return nil, fmt.Errorf("no token with id %q (docker tls ca tokens ls)", id)
		}
		hit.Revoked = true
		return list, nil
	})
	return hit, err
}

func (s *Tokens) read() ([]*Token, error) {
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	var list []*Token
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("read tokens %s: %w", s.Path, err)
	}
	return list, nil
}

// update runs f on the token list under an exclusive lock and writes back
// what it returns, unless it fails.
func (s *Tokens) update(f func([]*Token) ([]*Token, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fsutil.MkdirPrivate(filepath.Dir(s.Path)); err != nil {
		return err
	}
	release, err := fsutil.Lock(s.Path+".lock", 30*time.Second)
	if err != nil {
		return err
	}
	defer release()
	list, err := s.read()
	if err != nil {
		return err
	}
	next, err := f(list)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFile(s.Path, append(data, '\n'), fsutil.PrivateFile, true)
}
