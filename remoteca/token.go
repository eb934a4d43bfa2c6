package remoteca

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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
	// Groups go into every certificate the token enrolls; the client
	// cannot choose its own.
	Groups  []string  `json:"groups,omitempty"`
	Days    int       `json:"days,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Uses    int       `json:"uses"`
	Used    int       `json:"used"`
	Revoked bool      `json:"revoked,omitempty"`
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
	Groups  []string
	Days    int
	TTL     time.Duration
	Uses    int
	Now     time.Time
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
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
	if err := o.checkSubject(); err != nil {
		return err
	}
	if o.TTL <= 0 || o.TTL > 30*24*time.Hour {
		return fmt.Errorf("--ttl %s: give a duration from 1s to 720h", o.TTL)
	}
	if o.Uses < 1 || o.Uses > 10000 {
		return fmt.Errorf("--uses %d: give 1 to 10000", o.Uses)
	}
	return nil
}

// checkSubject checks what the certificates will name (CN, groups, SANs)
// against the profile, and sorts and canonicalizes them.
func (o *TokenOptions) checkSubject() error {
	if o.CN != "" {
		if strings.TrimSpace(o.CN) != o.CN {
			return fmt.Errorf("--cn %q has spaces at its start or end: give the name alone", o.CN)
		}
		if err := pki.CheckName("common name", o.CN); err != nil {
			return fmt.Errorf("--cn: %w", err)
		}
	}
	if err := pki.CheckGroups(o.Groups); err != nil {
		return fmt.Errorf("--group: %w", err)
	}
	if o.Profile == pki.ServerProfile && len(o.Groups) > 0 {
		return errors.New("--group is for client tokens: a server certificate names an engine, not a user")
	}
	if len(o.Groups) > 0 {
		o.Groups = slices.Sorted(slices.Values(o.Groups))
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
		toks[i] = &Token{ID: h[:12], Hash: h, Profile: o.Profile, CN: o.CN, SANs: o.SANs, Groups: o.Groups, Days: o.Days,
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
