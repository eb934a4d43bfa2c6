package remoteca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// Client enrolls with a remote CA: docker-tls's `ca serve` or cfssl.
//
// A request that fails on the way (refused connection, timeout, a replica
// that went away or answers 503) is sent again, to the next URL when there
// are several, a bounded number of times. That is safe because the service
// answers a repeated enrollment or renewal (same token or certificate, same
// key) with the certificate it already issued.
type Client struct {
	// URL is the service, https://HOST:PORT (http:// only with an auth
	// key); several replicas of one service separated by commas.
	URL string
	// Fingerprint pins the CA: 64 hex digits of SHA-256 of its certificate.
	Fingerprint string
	// Timeout bounds each request; 30s if zero.
	Timeout time.Duration
	// Lifetime asks Sign for certificates of this life (docker-tls's ca
	// serve; cfssl ignores it). Zero: the token's or the service's default.
	Lifetime time.Duration
	// Notes, if set, receives what the service says it changed of a
	// request (a lifetime cut short), for the user to see.
	Notes func(string)
	// Attempts bounds the tries of one request over all URLs; 3 rounds of
	// the URLs if zero.
	Attempts int
	// PinnedBy names what pinned Fingerprint, for a mismatch ("the
	// token" if empty).
	PinnedBy string
}

// Auth authenticates a sign request: an enrollment token, or a cfssl auth
// key (HMAC-SHA256 of the request).
type Auth struct {
	Token   string
	AuthKey []byte
}

// endpoints parses URL: one or more https://HOST:PORT.
func (c *Client) endpoints() ([]*url.URL, error) {
	var out []*url.URL
	for _, raw := range strings.Split(c.URL, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(strings.TrimRight(raw, "/"))
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("--ca-url %q: give https://HOST:PORT (several separated by commas)", raw)
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, errors.New("--ca-url: give https://HOST:PORT")
	}
	return out, nil
}

// CheckURL checks URL before anything is sent: one or more
// https://HOST:PORT.
func (c *Client) CheckURL() error {
	_, err := c.endpoints()
	return err
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 30 * time.Second
}

// FetchCA gets the CA certificate from /info and checks it against the
// pinned fingerprint. Nothing secret is sent on this first connection, so
// it may accept any server certificate; every later request is verified
// against the CA that this returns.
func (c *Client) FetchCA(ctx context.Context) (*x509.Certificate, error) {
	ca, _, err := c.fetchInfo(ctx)
	return ca, err
}

func (c *Client) fetchInfo(ctx context.Context) (*x509.Certificate, *InfoResult, error) {
	hc := c.httpClient(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) // pinned by fingerprint below
	var info InfoResult
	if err := c.post(ctx, func(*url.URL) *http.Client { return hc }, "/api/v1/cfssl/info", InfoRequest{Label: ""}, &info); err != nil {
		return nil, nil, err
	}
	ca, err := pki.ParseCertificate([]byte(info.Certificate))
	if err != nil {
		return nil, nil, fmt.Errorf("the CA certificate from %s: %w", c.URL, err)
	}
	got := FingerprintHex(ca.Raw)
	if got != c.Fingerprint {
		return nil, nil, fmt.Errorf("the CA at %s has fingerprint %s, but %s pins %s: refusing (the wrong server, or someone in between)",
			c.URL, colon(got), c.pinnedBy(), colon(c.Fingerprint))
	}
	if err := pki.CheckCACert(ca); err != nil {
		return nil, nil, fmt.Errorf("the CA at %s: %w", c.URL, err)
	}
	return ca, &info, nil
}

// pinnedBy names what pinned the CA, for a mismatch.
func (c *Client) pinnedBy() string {
	if c.PinnedBy != "" {
		return c.PinnedBy
	}
	return "the token"
}

// Sign sends the CSR and returns the certificate after checking that it is
// for our key and chains to the pinned CA with the profile's EKU.
func (c *Client) Sign(ctx context.Context, ca *x509.Certificate, auth Auth, csr *x509.CertificateRequest, profile pki.Profile, hosts []string) (*x509.Certificate, error) {
	eps, err := c.endpoints()
	if err != nil {
		return nil, err
	}
	for _, u := range eps {
		if u.Scheme != "https" && auth.Token != "" {
			return nil, errors.New("an enrollment token is a secret: the CA URL must be https://")
		}
	}
	sreq := SignRequest{CertificateRequest: EncodeCSR(csr), Profile: string(profile), Hosts: hosts}
	if c.Lifetime > 0 {
		sreq.Lifetime = c.Lifetime.String()
	}
	sr, err := json.Marshal(sreq)
	if err != nil {
		return nil, err
	}
	ar := AuthenticatedRequest{Timestamp: time.Now().Unix(), Request: sr}
	if auth.Token != "" {
		ar.Token = []byte(auth.Token)
	} else {
		mac := hmac.New(sha256.New, auth.AuthKey)
		mac.Write(sr)
		ar.Token = mac.Sum(nil)
	}
	var res SignResult
	if err := c.post(ctx, c.clients(ca, nil), "/api/v1/cfssl/authsign", ar, &res); err != nil {
		return nil, err
	}
	return c.checkIssued(res, ca, csr, profile)
}

// checkIssued checks a certificate the service answered with: for our
// key, chaining to the pinned CA with the profile's use.
func (c *Client) checkIssued(res SignResult, ca *x509.Certificate, csr *x509.CertificateRequest, profile pki.Profile) (*x509.Certificate, error) {
	cert, err := pki.ParseCertificate([]byte(res.Certificate))
	if err != nil {
		return nil, fmt.Errorf("the certificate from %s: %w", c.URL, err)
	}
	if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(csr.PublicKey) {
		return nil, errors.New("the CA returned a certificate for another key: refusing it")
	}
	if err := pki.VerifyLeaf(cert, ca, profile, time.Now()); err != nil {
		return nil, fmt.Errorf("the certificate from %s: %w", c.URL, err)
	}
	if res.Note != "" && c.Notes != nil {
		c.Notes(res.Note)
	}
	return cert, nil
}

// Renew asks the CA for a new certificate for csr, authenticating with the
// current, still valid, client certificate over mutual TLS. ca is the CA the
// context already trusts. It also returns the CAs the service says to
// trust now (during a rotation of the CA: the old and the new one), which
// the new certificate must chain to; without that answer (an older
// docker-tls), ca.
func (c *Client) Renew(ctx context.Context, ca *x509.Certificate, current tls.Certificate, csr *x509.CertificateRequest) (*x509.Certificate, []*x509.Certificate, error) {
	return c.RenewTrusting(ctx, []*x509.Certificate{ca}, current, csr)
}

// RenewTrusting is Renew for a context that trusts a bundle of CAs (one
// that followed a rotation trusts the old and the new one): the service
// is checked against every CA of it.
func (c *Client) RenewTrusting(ctx context.Context, trust []*x509.Certificate, current tls.Certificate, csr *x509.CertificateRequest) (*x509.Certificate, []*x509.Certificate, error) {
	var res SignResult
	if err := c.mutualPost(ctx, trust, current, RenewPath, SignRequest{CertificateRequest: EncodeCSR(csr)}, &res); err != nil {
		return nil, nil, err
	}
	cert, err := pki.ParseCertificate([]byte(res.Certificate))
	if err != nil {
		return nil, nil, fmt.Errorf("the certificate from %s: %w", c.URL, err)
	}
	if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(csr.PublicKey) {
		return nil, nil, errors.New("the CA returned a certificate for another key: refusing it")
	}
	bundle := trust
	if res.Bundle != "" {
		if bundle, err = pki.ParseCertificates([]byte(res.Bundle)); err != nil || len(bundle) == 0 {
			return nil, nil, fmt.Errorf("the CA bundle from %s does not parse: %v", c.URL, err)
		}
	}
	var verr error
	for _, b := range bundle {
		if verr = pki.VerifyLeaf(cert, b, pki.ClientProfile, time.Now()); verr == nil {
			return cert, bundle, nil
		}
	}
	return nil, nil, fmt.Errorf("the certificate from %s: %w", c.URL, verr)
}

func (c *Client) httpClient(cfg *tls.Config) *http.Client {
	return &http.Client{
		Timeout: c.timeout(),
		Transport: &http.Transport{
			TLSClientConfig:     cfg,
			DialContext:         (&net.Dialer{Timeout: c.timeout()}).DialContext,
			TLSHandshakeTimeout: c.timeout(),
		},
	}
}

// Health asks the service (the first of its URLs that answers) whether it
// can issue and whether its CA is being rotated. trust are the CAs the
// caller trusts for the service's certificate.
func (c *Client) Health(ctx context.Context, trust []*x509.Certificate) (*Health, error) {
	eps, err := c.endpoints()
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, t := range trust {
		pool.AddCert(t)
	}
	var last error
	for _, u := range eps {
		hc := c.httpClient(&tls.Config{RootCAs: pool, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String()+HealthPath, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			last = fmt.Errorf("cannot reach the CA at %s: %w", u, err)
			continue
		}
		var env struct {
			Success bool   `json:"success"`
			Result  Health `json:"result"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 64*1024)).Decode(&env)
		resp.Body.Close()
		if err != nil || !env.Success {
			last = fmt.Errorf("%s answered %s", u, resp.Status)
			continue
		}
		return &env.Result, nil
	}
	return nil, last
}

// clients returns, per endpoint, an HTTP client that verifies the service
// against ca under the endpoint's host name, made once per host.
func (c *Client) clients(ca *x509.Certificate, cert *tls.Certificate) func(*url.URL) *http.Client {
	return c.clientsTrusting([]*x509.Certificate{ca}, cert)
}

func (c *Client) clientsTrusting(trust []*x509.Certificate, cert *tls.Certificate) func(*url.URL) *http.Client {
	made := map[string]*http.Client{}
	return func(u *url.URL) *http.Client {
		if hc := made[u.Hostname()]; hc != nil {
			return hc
		}
		hc := c.httpClient(pki.ClientTLSBundle(trust, u.Hostname(), cert))
		made[u.Hostname()] = hc
		return hc
	}
}

// errRetry marks a failure on the way, worth sending again.
type errRetry struct{ err error }

func (e *errRetry) Error() string { return e.err.Error() }
func (e *errRetry) Unwrap() error { return e.err }

// post sends body to path on the service's URLs in turn until one answers
// (bounded: Attempts tries, a short growing pause after each round), and
// decodes the result. A refusal by the CA is final; only failures on the
// way are retried.
func (c *Client) post(ctx context.Context, client func(*url.URL) *http.Client, path string, body, result any) error {
	eps, err := c.endpoints()
	if err != nil {
		return err
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = 3 * len(eps)
	}
	pause := 250 * time.Millisecond
	var last error
	for i := range attempts {
		if i > 0 && i%len(eps) == 0 {
			select {
			case <-ctx.Done():
				return last
			case <-time.After(pause):
			}
			pause *= 2
		}
		u := eps[i%len(eps)]
		err := c.postOnce(ctx, client(u), u, u.String()+path, data, result)
		var retry *errRetry
		if !errors.As(err, &retry) {
			return err
		}
		last = retry.err
		if ctx.Err() != nil {
			break
		}
	}
	return last
}

func (c *Client) postOnce(ctx context.Context, hc *http.Client, u *url.URL, url string, data []byte, result any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			return fmt.Errorf("%s does not present a certificate from the pinned CA: refusing", u)
		}
		if i := strings.Index(err.Error(), "remote error: tls: "); i >= 0 {
			// The service refused our side of TLS (our certificate): final.
			// crypto/tls exports no type for a received alert.
			return &RefusedError{Msg: fmt.Sprintf("the CA at %s refused our certificate (%s)", u, err.Error()[i+len("remote error: tls: "):])}
		}
		return &errRetry{fmt.Errorf("cannot reach the CA at %s: %w", u, err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return &errRetry{fmt.Errorf("read the answer of %s: %w", u, err)}
	}
	var env struct {
		Success bool            `json:"success"`
		Result  json.RawMessage `json:"result"`
		Errors  []ResponseError `json:"errors"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		if resp.StatusCode >= 500 {
			return &errRetry{fmt.Errorf("%s answered %s", u, resp.Status)}
		}
		if u.Scheme == "http" {
			return fmt.Errorf("%s answered %s, not a CA API response: docker tls ca serve speaks HTTPS only, so give https://%s", u, resp.Status, u.Host)
		}
		return fmt.Errorf("%s answered %s, not a CA API response", u, resp.Status)
	}
	if !env.Success {
		msg := resp.Status
		if len(env.Errors) > 0 {
			msg = env.Errors[0].Message
		}
		err := &RefusedError{Code: resp.StatusCode, Msg: "the CA refused: " + msg}
		if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout {
			return &errRetry{err}
		}
		return err
	}
	if err := json.Unmarshal(env.Result, result); err != nil {
		return fmt.Errorf("the answer of %s: %w", u, err)
	}
	return nil
}

// RefusedError is the CA service saying no: an API refusal with its HTTP
// status, or (Code 0) a TLS alert about our certificate.
type RefusedError struct {
	Code int
	Msg  string
}

func (e *RefusedError) Error() string { return e.Msg }

// colon formats hex as AA:BB:…, the way fingerprints are shown elsewhere.
func colon(h string) string {
	h = strings.ToUpper(h)
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i:min(i+2, len(h))])
	}
	return b.String()
}
