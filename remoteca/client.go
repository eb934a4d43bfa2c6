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
type Client struct {
	// URL is the service, https://HOST:PORT (http:// only with an auth key).
	URL string
	// Fingerprint pins the CA: 64 hex digits of SHA-256 of its certificate.
	Fingerprint string
	// Timeout bounds each request; 30s if zero.
	Timeout time.Duration
}

// Auth authenticates a sign request: an enrollment token, or a cfssl auth
// key (HMAC-SHA256 of the request).
type Auth struct {
	Token   string
	AuthKey []byte
}

func (c *Client) base() (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(c.URL, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("--ca-url %q: give https://HOST:PORT", c.URL)
	}
	return u, nil
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
	u, err := c.base()
	if err != nil {
		return nil, err
	}
	hc := c.httpClient(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) // pinned by fingerprint below
	var info InfoResult
	if err := c.post(ctx, hc, u.String()+"/api/v1/cfssl/info", InfoRequest{Label: ""}, &info); err != nil {
		return nil, err
	}
	ca, err := pki.ParseCertificate([]byte(info.Certificate))
	if err != nil {
		return nil, fmt.Errorf("the CA certificate from %s: %w", c.URL, err)
	}
	got := FingerprintHex(ca.Raw)
	if got != c.Fingerprint {
		return nil, fmt.Errorf("the CA at %s has fingerprint %s, but the token pins %s: refusing (the wrong server, or someone in between)",
			c.URL, colon(got), colon(c.Fingerprint))
	}
	if err := pki.CheckCACert(ca); err != nil {
		return nil, fmt.Errorf("the CA at %s: %w", c.URL, err)
	}
	return ca, nil
}

// Sign sends the CSR and returns the certificate after checking that it is
// for our key and chains to the pinned CA with the profile's EKU.
func (c *Client) Sign(ctx context.Context, ca *x509.Certificate, auth Auth, csr *x509.CertificateRequest, profile pki.Profile, hosts []string) (*x509.Certificate, error) {
	u, err := c.base()
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" && auth.Token != "" {
		return nil, errors.New("an enrollment token is a secret: the CA URL must be https://")
	}
	sr, err := json.Marshal(SignRequest{CertificateRequest: EncodeCSR(csr), Profile: string(profile), Hosts: hosts})
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
	hc := c.httpClient(pki.ClientTLS(ca, u.Hostname(), nil))
	var res SignResult
	if err := c.post(ctx, hc, u.String()+"/api/v1/cfssl/authsign", ar, &res); err != nil {
		return nil, err
	}
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
	return cert, nil
}

// Renew asks the CA for a new certificate for csr, authenticating with the
// current, still valid, client certificate over mutual TLS. ca is the CA the
// context already trusts; the result is checked like Sign's.
func (c *Client) Renew(ctx context.Context, ca *x509.Certificate, current tls.Certificate, csr *x509.CertificateRequest) (*x509.Certificate, error) {
	u, err := c.base()
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" {
		return nil, errors.New("renewal authenticates with the client certificate: the CA URL must be https://")
	}
	hc := c.httpClient(pki.ClientTLS(ca, u.Hostname(), &current))
	var res SignResult
	if err := c.post(ctx, hc, u.String()+RenewPath, SignRequest{CertificateRequest: EncodeCSR(csr)}, &res); err != nil {
		return nil, err
	}
	cert, err := pki.ParseCertificate([]byte(res.Certificate))
	if err != nil {
		return nil, fmt.Errorf("the certificate from %s: %w", c.URL, err)
	}
	if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(csr.PublicKey) {
		return nil, errors.New("the CA returned a certificate for another key: refusing it")
	}
	if err := pki.VerifyLeaf(cert, ca, pki.ClientProfile, time.Now()); err != nil {
		return nil, fmt.Errorf("the certificate from %s: %w", c.URL, err)
	}
	return cert, nil
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

func (c *Client) post(ctx context.Context, hc *http.Client, url string, body, result any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			return fmt.Errorf("%s does not present a certificate from the pinned CA: refusing", c.URL)
		}
		return fmt.Errorf("cannot reach the CA at %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", c.URL, err)
	}
	var env struct {
		Success bool            `json:"success"`
		Result  json.RawMessage `json:"result"`
		Errors  []ResponseError `json:"errors"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s answered %s, not a CA API response", c.URL, resp.Status)
	}
	if !env.Success {
		msg := resp.Status
		if len(env.Errors) > 0 {
			msg = env.Errors[0].Message
		}
		return fmt.Errorf("the CA refused: %s", msg)
	}
	if err := json.Unmarshal(env.Result, result); err != nil {
		return fmt.Errorf("the answer of %s: %w", c.URL, err)
	}
	return nil
}

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
