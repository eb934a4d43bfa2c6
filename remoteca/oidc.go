package remoteca

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/docker-tls/docker-tls/pki"
)

// OIDCPath is where a signed-in laptop trades an ID token from the team's
// identity provider, with a CSR, for a client certificate.
const OIDCPath = "/api/v1/docker-tls/oidc-sign"

// DefaultSignInLifetime is how long a certificate from a sign-in lives
// unless the service says otherwise: a working day, so that the identity
// provider is asked again often (a person who left the team stops getting
// certificates within a day).
const DefaultSignInLifetime = 12 * time.Hour

// OIDC is sign-in with the team's identity provider (OpenID Connect): an
// ID token it signed for ClientID buys a client certificate whose CN is
// the user claim and whose groups (Organization) are the groups claim.
// The ID token is verified by go-oidc: issuer, audience, expiry, and the
// signature against the provider's published keys.
type OIDC struct {
	Issuer   string
	ClientID string
	// UserClaim names the user (default "email"); GroupsClaim their
	// groups (default "groups").
	UserClaim, GroupsClaim string
	// AllowedDomains, when set, are the only email domains the user claim
	// may have.
	AllowedDomains []string
	// MaxLifetime caps a signed-in certificate (DefaultSignInLifetime).
	MaxLifetime time.Duration

	verifier *oidc.IDTokenVerifier
}

// Connect reads the provider's discovery document. ctx must live as long
// as the service: the provider's keys are fetched again under it when
// they rotate. client bounds each request to the provider.
func (o *OIDC) Connect(ctx context.Context, client *http.Client) error {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, client), o.Issuer)
	if err != nil {
		return fmt.Errorf("the identity provider %s: %w", o.Issuer, err)
	}
	o.verifier = p.Verifier(&oidc.Config{ClientID: o.ClientID})
	return nil
}

func (o *OIDC) userClaim() string   { return cmp.Or(o.UserClaim, "email") }
func (o *OIDC) groupsClaim() string { return cmp.Or(o.GroupsClaim, "groups") }

// Lifetime is how long a sign-in's certificate lives: MaxLifetime, else
// DefaultSignInLifetime.
func (o *OIDC) Lifetime() time.Duration { return cmp.Or(o.MaxLifetime, DefaultSignInLifetime) }

// SignedIn is who an ID token says signed in.
type SignedIn struct {
	User   string
	Groups []string
}

// Verify checks an ID token and reads who it names. Its errors are
// refusals for the client.
func (o *OIDC) Verify(ctx context.Context, raw string) (*SignedIn, error) {
	if o.verifier == nil {
		return nil, errors.New("the identity provider was not connected")
	}
	tok, err := o.verifier.Verify(ctx, raw)
	if err != nil {
		var exp *oidc.TokenExpiredError
		if errors.As(err, &exp) {
			return nil, refuse(http.StatusUnauthorized, "the sign-in expired at %s: sign in again", exp.Expiry.UTC().Format(time.RFC3339))
		}
		return nil, refuse(http.StatusUnauthorized, "the ID token does not verify against %s for client %s: %v", o.Issuer, o.ClientID, err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, refuse(http.StatusBadRequest, "the ID token's claims do not read: %v", err)
	}
	user, err := o.user(claims)
	if err != nil {
		return nil, err
	}
	groups, err := o.groups(claims)
	if err != nil {
		return nil, err
	}
	return &SignedIn{User: user, Groups: groups}, nil
}

// user is the user claim: present, a verified email when it is one, of an
// allowed domain.
func (o *OIDC) user(claims map[string]any) (string, error) {
	user, _ := claims[o.userClaim()].(string)
	if user == "" {
		return "", refuse(http.StatusForbidden, "the ID token has no %q claim to name the user: the provider must put it in the ID token", o.userClaim())
	}
	if o.userClaim() == "email" {
		if v, ok := claims["email_verified"].(bool); ok && !v {
			return "", refuse(http.StatusForbidden, "the provider has not verified the email %s", user)
		}
	}
	if len(o.AllowedDomains) > 0 {
		_, domain, ok := strings.Cut(user, "@")
		if !ok || !slices.ContainsFunc(o.AllowedDomains, func(d string) bool { return strings.EqualFold(d, domain) }) {
			return "", refuse(http.StatusForbidden, "%s is not of a domain this service signs in (%s)", user, strings.Join(o.AllowedDomains, ", "))
		}
	}
	return user, nil
}

// groups is the groups claim, absent, one name or a list of names, each a
// name a certificate can carry.
func (o *OIDC) groups(claims map[string]any) ([]string, error) {
	var groups []string
	switch v := claims[o.groupsClaim()].(type) {
	case nil:
	case string:
		groups = []string{v}
	case []any:
		for _, g := range v {
			s, ok := g.(string)
			if !ok {
				return nil, refuse(http.StatusForbidden, "the %q claim holds %v, not names", o.groupsClaim(), g)
			}
			groups = append(groups, s)
		}
	default:
		return nil, refuse(http.StatusForbidden, "the %q claim is %T, not a list of names", o.groupsClaim(), v)
	}
	if err := pki.CheckGroups(groups); err != nil {
		return nil, refuse(http.StatusForbidden, "the %q claim: %v", o.groupsClaim(), err)
	}
	return groups, nil
}

// handleSignIn issues a client certificate to a signed-in user: the CN is
// the user claim, the groups the groups claim (a CSR's subject is
// ignored), the lifetime the service's for sign-ins. A revoked name gets
// nothing; the certificate is recorded before it is given out.
func (s *Server) handleSignIn(w http.ResponseWriter, r *http.Request) {
	src := source(r)
	fail := func(err error) {
		code, msg := status(err)
		if code >= 500 {
			s.logf("error source=%s: %v", src, err)
		}
		s.logf("refused source=%s code=%d reason=%q", src, code, msg)
		writeJSON(w, code, nil, msg)
	}
	if s.OIDC == nil {
		fail(refuse(http.StatusNotFound, "this service does not take sign-ins: enroll with a token (docker tls ca token), or run ca serve with --oidc-issuer"))
		return
	}
	var req SignInRequest
	if code, msg := readBody(w, r, &req); code != 0 {
		fail(refuse(code, "%s", msg))
		return
	}
	csr, err := parseCSR(req.CertificateRequest)
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		fail(refuse(http.StatusBadRequest, "the CSR: %v", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	who, err := s.OIDC.Verify(ctx, req.IDToken)
	if err != nil {
		fail(err)
		return
	}
	now := s.now()
	a := s.current()
	life, _, err := s.lifetime(pki.ClientProfile, s.OIDC.Lifetime(), 0, a.signer(), false)
	if err != nil {
		fail(err)
		return
	}
	cert, rec, replay, err := s.DB.SignIn(ctx, SignInRecord{IDToken: req.IDToken, PublicKey: PublicKeyID(csr.RawSubjectPublicKeyInfo), CN: who.User, Source: src, Now: now},
		func() (*x509.Certificate, error) {
			cert, err := a.signer().SignCSR(csr, pki.IssueRequest{Profile: pki.ClientProfile, CommonName: who.User, Groups: who.Groups, Lifetime: life, Now: now})
			if err != nil {
				return nil, refuse(http.StatusBadRequest, "%s", err.Error())
			}
			return cert, nil
		})
	if err != nil {
		fail(err)
		return
	}
	event := "signed-in"
	if replay {
		event = "signed-in-again" // a retry: the same certificate
	}
	s.logf("%s serial=%s cn=%q groups=%q source=%s notAfter=%s", event, rec.Serial, rec.CN, strings.Join(who.Groups, ","), src, rec.NotAfter.Format(time.RFC3339))
	writeJSON(w, http.StatusOK, SignResult{Certificate: string(pki.EncodeCertificate(cert)), Bundle: a.bundle()}, "")
}

// Check checks the settings before anything is started: the issuer is an
// https URL (http only on this machine's loopback, for a test provider),
// with a client ID.
func (o *OIDC) Check() error {
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("--oidc-issuer %q: give the provider's issuer URL, such as https://accounts.example.com", o.Issuer)
	}
	if u.Scheme == "http" {
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("--oidc-issuer %s: an identity provider is reached over https (http only on this machine's loopback)", o.Issuer)
		}
	}
	if o.ClientID == "" {
		return fmt.Errorf("--oidc-issuer needs --oidc-client-id: the public client (no secret) the laptops sign in as")
	}
	for _, d := range o.AllowedDomains {
		if d == "" || strings.ContainsAny(d, "@/ ") || !strings.Contains(d, ".") {
			return fmt.Errorf("--oidc-allowed-domain %q: give a domain, such as example.com", d)
		}
	}
	if o.MaxLifetime != 0 && o.MaxLifetime < MinLifetime {
		return fmt.Errorf("--max-lifetime oidc=%s: give at least %s", o.MaxLifetime, MinLifetime)
	}
	return nil
}
