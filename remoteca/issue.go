package remoteca

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/docker-tls/docker-tls/pki"
)

// Credentials are what a client shows a CA service, and how it pins the
// service's CA before anything is sent.
type Credentials struct {
	// Token is a one-time token of docker tls ca token; it pins its CA.
	Token string
	// Fingerprint pins the CA: needed with AuthKey; beside a token it must
	// be the token's.
	Fingerprint string
	// AuthKey is a cfssl auth key.
	AuthKey []byte
}

// Authenticate pins c to the CA that cred names and returns the Auth its
// requests carry.
func (c *Client) Authenticate(cred Credentials) (Auth, error) {
	if cred.Token == "" {
		fp, err := NormalizeFingerprint(cred.Fingerprint)
		if err != nil {
			return Auth{}, fmt.Errorf("--ca-fingerprint: %w", err)
		}
		c.Fingerprint = fp
		return Auth{AuthKey: cred.AuthKey}, nil
	}
	p, err := ParseToken(cred.Token)
	if err != nil {
		return Auth{}, err
	}
	// A fingerprint given beside a token must be the one the token pins:
	// the user meant a CA, and this token is for another.
	if cred.Fingerprint != "" {
		fp, err := NormalizeFingerprint(cred.Fingerprint)
		if err != nil {
			return Auth{}, fmt.Errorf("--ca-fingerprint: %w", err)
		}
		if fp != p.Fingerprint {
			return Auth{}, fmt.Errorf("--ca-fingerprint %s is not the CA this token is for (sha256:%s…): check which CA you meant, or leave --ca-fingerprint out (the token pins its CA)", cred.Fingerprint, p.Fingerprint[:16])
		}
	}
	c.Fingerprint = p.Fingerprint
	return Auth{Token: p.String()}, nil
}

// IssueRequest is a certificate asked for a key this machine holds.
type IssueRequest struct {
	// CommonName is the name asked for; empty lets a token that names the
	// client decide, and DefaultName goes when the token does not (or
	// there is no token: cfssl takes the CN from the CSR).
	CommonName, DefaultName string
	SANs                    pki.SANs
	Profile                 pki.Profile
}

// Issue makes a CSR for key and has the service sign it. It returns the
// pinned CA and the certificate, both checked (see Sign).
func (c *Client) Issue(ctx context.Context, auth Auth, key crypto.Signer, rq IssueRequest) (ca, cert *x509.Certificate, err error) {
	if ca, err = c.FetchCA(ctx); err != nil {
		return nil, nil, err
	}
	var hosts []string
	for _, s := range rq.SANs.Strings() {
		hosts = append(hosts, strings.TrimPrefix(strings.TrimPrefix(s, "DNS:"), "IP:"))
	}
	sign := func(cn string) (*x509.Certificate, error) {
		csr, err := pki.NewCSR(key, cn, rq.SANs)
		if err != nil {
			return nil, err
		}
		return c.Sign(ctx, ca, auth, csr, rq.Profile, hosts)
	}
	// A token that does not name the client is refused before it is
	// spent; the default name goes instead.
	ask := rq.CommonName
	if ask == "" && auth.Token == "" {
		ask = rq.DefaultName
	}
	cert, err = sign(ask)
	if err != nil && ask == "" && rq.DefaultName != "" && strings.Contains(err.Error(), "does not name the client") {
		cert, err = sign(rq.DefaultName)
	}
	if err != nil {
		return nil, nil, err
	}
	return ca, cert, nil
}

// SignInInfo is the CA pinned by c's fingerprint and, when the service
// takes sign-ins, its identity provider (nil when it does not).
func (c *Client) SignInInfo(ctx context.Context) (*x509.Certificate, *OIDCInfo, error) {
	ca, info, err := c.fetchInfo(ctx)
	if err != nil {
		return nil, nil, err
	}
	return ca, info.OIDC, nil
}

// SignIn trades an ID token and a CSR for key for a client certificate,
// checked as Sign checks (our key, the pinned CA, client use). The
// service decides the name and groups from the ID token.
func (c *Client) SignIn(ctx context.Context, ca *x509.Certificate, idToken string, key crypto.Signer) (*x509.Certificate, error) {
	csr, err := pki.NewCSR(key, "signed-in", pki.SANs{})
	if err != nil {
		return nil, err
	}
	var res SignResult
	if err := c.post(ctx, c.clients(ca, nil), OIDCPath, SignInRequest{CertificateRequest: EncodeCSR(csr), IDToken: idToken}, &res); err != nil {
		return nil, err
	}
	return c.checkIssued(res, ca, csr, pki.ClientProfile)
}
