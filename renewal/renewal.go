// Package renewal renews the client certificate of a context docker-tls
// made: from the local CA that issued it, or from the CA service it enrolled
// with, where the certificate it still holds authenticates the renewal over
// mutual TLS (no token). The new certificate is checked — it chains to a CA
// the context will trust, it is for the context's key, it is a client
// certificate — before it is swapped into the context by the context
// store's one atomic change; whatever fails before that leaves the old one
// working.
//
// During a rotation of the CA the renewal follows it: a context that already
// trusts the new local CA renews from it (a renewal must not undo phase 3),
// and the CA service answers with the old and the new CA, which the context
// then trusts, before its new certificate is swapped in.
//
// It also says what the agent renews by itself (Due) and which enrolled
// contexts are behind their service's rotation (BehindRotation).
//
// Errors carry facts (ExpiredError, CAChangedError, ErrImported); the
// command layer says what to run.
package renewal

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
	"github.com/docker-tls/docker-tls/signin"
)

// ErrImported is a context whose certificate was imported: docker-tls does
// not know its CA.
var ErrImported = errors.New("this context's certificate was imported, so docker tls does not know its CA")

// ExpiredError is an enrolled context whose certificate expired and that
// its CA service would not renew (one run with --renew-after-expiry renews
// it within its grace).
type ExpiredError struct {
	Context  string
	CAURL    string
	NotAfter time.Time
	// Refusal is what the service answered when asked anyway ("" when it
	// was not asked).
	Refusal string
	// SignIn says the context came from a sign-in: a new one renews it
	// (docker tls renew NAME), where the person can be asked.
	SignIn bool
	// Catalog is the CA service whose catalog of engines the context came
	// from, and Fingerprint its CA's: one new sign-in there renews every
	// context of the catalog (enroll --engines).
	Catalog, Fingerprint string
}

func (e *ExpiredError) Error() string {
	if e.Refusal != "" {
		return fmt.Sprintf("the certificate expired on %s and was not renewed (%s)", e.NotAfter.Format("2006-01-02"), e.Refusal)
	}
	return fmt.Sprintf("the certificate expired on %s, so it cannot authenticate a renewal", e.NotAfter.Format("2006-01-02"))
}

// CAChangedError is a context whose local CA is no longer the one it
// trusts (the CA was re-created under the same name).
type CAChangedError struct{ CA string }

func (e *CAChangedError) Error() string {
	return fmt.Sprintf("the local CA %q is not the CA in the context any more (it was re-created?)", e.CA)
}

// Renewer renews contexts of one context store.
type Renewer struct {
	Contexts *contexts.Store
	Keys     keystore.Stores
	// CA opens a local CA and its signer, and Next the signer of the new
	// CA of its rotation (asked only when the context already trusts it).
	// Asking for a passphrase is the caller's.
	CA   func(name string) (*castore.CA, *pki.CA, error)
	Next func(*castore.CA) (*pki.CA, error)
	// Issuer, when set, is what issues from a local CA for the context
	// named (the plugin's records each certificate in the CA's inventory).
	Issuer func(stored *castore.CA, ca *pki.CA, context string) pki.Issuer
	// Renewed is told of each context that got a new certificate (the
	// agent rereads an agent-mode one); may be nil.
	Renewed func(*contexts.Context)
	// SignIn, when set, signs the person in again for a context that came
	// from a sign-in and whose certificate expired, and returns a
	// certificate for key and the provider's refresh token, if any. nil
	// where no one can be asked (the agent, renew --all): the
	// ExpiredError then says a new sign-in is needed.
	SignIn func(ctx context.Context, c *contexts.Context, key crypto.Signer) (*x509.Certificate, string, error)
	// HTTPClient carries a refresh at the identity provider; a client
	// with a 30 s timeout if nil.
	HTTPClient *http.Client
}

// Options are a renewal's choices.
type Options struct {
	// Rekey makes a new key of the same type, into the same key store.
	Rekey bool
	// Lifetime is the new certificate's, from a local CA; 0 keeps the old
	// certificate's. A CA service decides its own.
	Lifetime time.Duration
}

// Renew renews c. Another command may change the context's key between the
// read and the renewal (a rekey, a key migration, a lock): then the context
// is renewed as it is now, a few times at most.
func (r *Renewer) Renew(ctx context.Context, c *contexts.Context, o Options) (*x509.Certificate, error) {
	for attempt := 0; ; attempt++ {
		cert, err := r.renewOnce(ctx, c, o)
		if !errors.Is(err, keystore.ErrNotFound) || attempt == 4 {
			return cert, err
		}
		now, gerr := r.Contexts.Get(c.Name)
		if gerr != nil || now.KeyOf() == c.KeyOf() {
			return cert, err
		}
		c = now
	}
}

// current reads what the context trusts (one CA, or the bundle of a
// context that followed a rotation), as PEM and parsed, and its
// certificate.
func (r *Renewer) current(c *contexts.Context) (caPEM []byte, trust []*x509.Certificate, cert *x509.Certificate, err error) {
	caPEM, certPEM, err := r.Contexts.PEMs(c)
	if err != nil {
		return nil, nil, nil, err
	}
	if trust, err = pki.ParseCertificates(caPEM); err != nil {
		return nil, nil, nil, fmt.Errorf("ca.pem: %w", err)
	}
	if len(trust) == 0 {
		return nil, nil, nil, errors.New("ca.pem holds no certificate")
	}
	if cert, err = pki.ParseCertificate(certPEM); err != nil {
		return nil, nil, nil, fmt.Errorf("cert.pem: %w", err)
	}
	return caPEM, trust, cert, nil
}

func (r *Renewer) renewOnce(ctx context.Context, c *contexts.Context, o Options) (*x509.Certificate, error) {
	caPEM, trust, old, err := r.current(c)
	if err != nil {
		return nil, err
	}
	oldKey, key, err := r.keysOf(c, o.Rekey)
	if err != nil {
		return nil, err
	}
	var cert *x509.Certificate
	// trust is what the new certificate must chain to: the context's
	// bundle, or the one the CA service answers with (during a rotation:
	// the old and the new CA), which the context then trusts.
	var newTrust []byte
	// refreshed is the refresh token to keep after a new sign-in.
	var refreshed string
	switch {
	case c.TLS.CAURL != "":
		var bundle []*x509.Certificate
		if cert, bundle, refreshed, err = r.fromServiceOrSignIn(ctx, c, trust, old, oldKey, key); err != nil {
			return nil, err
		}
		var pemBundle []byte
		for _, b := range bundle {
			pemBundle = append(pemBundle, pki.EncodeCertificate(b)...)
		}
		if string(pemBundle) != string(caPEM) {
			trust, newTrust = bundle, pemBundle
		}
	case c.TLS.CA != "":
		if cert, err = r.fromCA(c, trust, old, key, o); err != nil {
			return nil, err
		}
	default:
		return nil, ErrImported
	}
	if err := check(cert, key, trust); err != nil {
		return nil, err
	}
	if newTrust != nil {
		// The new trust first: harmless with the old certificate, and
		// needed by the new one's engines.
		if c, err = r.Contexts.Retrust(c, newTrust, nil); err != nil {
			return nil, err
		}
	}
	renewed, err := r.Contexts.Renew(c, cert, key, o.Rekey)
	if err != nil {
		return nil, err
	}
	if refreshed != "" && refreshed != r.Contexts.RefreshToken(renewed) {
		// The certificate is in; a token not kept costs only a person's
		// sign-in next time, so this does not fail the renewal.
		_ = r.Contexts.KeepRefreshToken(renewed, key, refreshed)
	}
	if r.Renewed != nil {
		r.Renewed(c)
	}
	return cert, nil
}

// keysOf returns the context's key and the key its new certificate is
// for: the same one, or with rekey a new key of the same type.
func (r *Renewer) keysOf(c *contexts.Context, rekey bool) (oldKey, key crypto.Signer, err error) {
	ks, err := r.Keys.Open(c.TLS.KeyStore, nil)
	if err != nil {
		return nil, nil, err
	}
	if oldKey, err = ks.Get(c.TLS.KeyID); err != nil {
		return nil, nil, err
	}
	if !rekey {
		return oldKey, oldKey, nil
	}
	kt, err := pki.KeyTypeOf(oldKey.Public())
	if err != nil {
		return nil, nil, err
	}
	key, err = pki.GenerateKey(kt)
	return oldKey, key, err
}

// fromServiceOrSignIn renews an enrolled context at its CA service; an
// expired sign-in signs in again. It returns the certificate, the CAs
// the service says to trust, and a refresh token to keep ("" if none).
func (r *Renewer) fromServiceOrSignIn(ctx context.Context, c *contexts.Context, trust []*x509.Certificate, old *x509.Certificate, oldKey, key crypto.Signer) (*x509.Certificate, []*x509.Certificate, string, error) {
	cert, bundle, err := fromService(ctx, c, trust, old, oldKey, key)
	var expired *ExpiredError
	if !errors.As(err, &expired) || !c.TLS.SignIn {
		return cert, bundle, "", err
	}
	// The CA is the one the context trusts: the sign-in pins it.
	cert, refreshed, err := r.signInAgain(ctx, c, key, expired)
	return cert, trust, refreshed, err
}

// signInAgain gets an expired sign-in's context a certificate for key by
// a new sign-in: first without the person, with the refresh token kept
// with its key, then by asking the person (SignIn). It returns the
// refresh token to keep. With neither, expired says a sign-in is needed,
// and why the refresh token did not do.
func (r *Renewer) signInAgain(ctx context.Context, c *contexts.Context, key crypto.Signer, expired *ExpiredError) (*x509.Certificate, string, error) {
	if tok := r.Contexts.RefreshToken(c); tok != "" {
		cert, next, err := r.refresh(ctx, c, key, tok)
		if err == nil {
			return cert, next, nil
		}
		expired.Refusal = err.Error()
	}
	if r.SignIn == nil {
		expired.SignIn = true
		expired.Catalog, expired.Fingerprint = c.TLS.Catalog, c.TLS.CAFingerprint
		return nil, "", expired
	}
	return r.SignIn(ctx, c, key)
}

// refresh trades the refresh token of c's sign-in for a new ID token at
// the identity provider the CA service names (the service pinned by the
// CA the context trusts), and that for a certificate for key.
func (r *Renewer) refresh(ctx context.Context, c *contexts.Context, key crypto.Signer, token string) (*x509.Certificate, string, error) {
	fp, err := remoteca.NormalizeFingerprint(c.TLS.CAFingerprint)
	if err != nil {
		return nil, "", err
	}
	client := &remoteca.Client{URL: c.TLS.CAURL, Fingerprint: fp, PinnedBy: "the context's CA"}
	ca, provider, err := client.SignInInfo(ctx)
	if err != nil {
		return nil, "", err
	}
	if provider == nil {
		return nil, "", fmt.Errorf("the CA service at %s no longer takes sign-ins", c.TLS.CAURL)
	}
	hc := r.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	res, err := signin.Refresh(ctx, provider.Issuer, provider.ClientID, hc, token)
	if err != nil {
		return nil, "", err
	}
	cert, err := client.SignIn(ctx, ca, res.IDToken, key)
	if err != nil {
		return nil, "", err
	}
	return cert, res.RefreshToken, nil
}

// fromService renews an enrolled context's certificate at its CA service,
// authenticated by the certificate it has, and returns the CAs the service
// answers with. An expired certificate is tried too: a service run with
// --renew-after-expiry renews it within its grace; any other refusal of
// it is an ExpiredError.
func fromService(ctx context.Context, c *contexts.Context, trust []*x509.Certificate, old *x509.Certificate, oldKey, key crypto.Signer) (*x509.Certificate, []*x509.Certificate, error) {
	csr, err := pki.NewCSR(key, old.Subject.CommonName, pki.SANs{})
	if err != nil {
		return nil, nil, err
	}
	client := &remoteca.Client{URL: c.TLS.CAURL}
	current := tls.Certificate{Certificate: [][]byte{old.Raw}, PrivateKey: oldKey, Leaf: old}
	cert, bundle, err := client.RenewTrusting(ctx, trust, current, csr)
	var refused *remoteca.RefusedError
	if err != nil && time.Now().After(old.NotAfter) && errors.As(err, &refused) {
		return nil, nil, &ExpiredError{Context: c.Name, CAURL: c.TLS.CAURL, NotAfter: old.NotAfter, Refusal: refused.Msg}
	}
	return cert, bundle, err
}

// fromCA issues a context's new certificate from the local CA it came
// from: the same subject, the old lifetime or o.Lifetime, for key.
func (r *Renewer) fromCA(c *contexts.Context, trust []*x509.Certificate, old *x509.Certificate, key crypto.Signer, o Options) (*x509.Certificate, error) {
	stored, ca, err := r.CA(c.TLS.CA)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(trust, stored.Cert.Equal) {
		return nil, &CAChangedError{CA: c.TLS.CA}
	}
	// During a rotation, a context that already trusts the new CA renews
	// from it, so that the renewal does not undo phase 3.
	if stored.NextCert != nil && slices.ContainsFunc(trust, stored.NextCert.Equal) {
		if ca, err = r.Next(stored); err != nil {
			return nil, err
		}
	}
	life := old.NotAfter.Sub(old.NotBefore) - pki.Backdate
	if o.Lifetime > 0 {
		life = o.Lifetime
	}
	var iss pki.Issuer = ca
	if r.Issuer != nil {
		iss = r.Issuer(stored, ca, c.Name)
	}
	return iss.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: old.Subject.CommonName, Groups: pki.GroupsOf(old), PublicKey: key.Public(), Lifetime: life})
}

// check checks a new certificate before it is swapped in: it chains to one
// of the CAs the context will trust, as a client certificate, and is for
// key.
func check(cert *x509.Certificate, key crypto.Signer, trust []*x509.Certificate) error {
	verr := errors.New("the context trusts no CA")
	for _, ca := range trust {
		if verr = pki.VerifyLeaf(cert, ca, pki.ClientProfile, time.Now()); verr == nil {
			break
		}
	}
	if verr != nil {
		return verr
	}
	return pki.CheckKeyMatch(cert, key)
}
