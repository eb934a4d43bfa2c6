package remoteca

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

type fixture struct {
	ca     *pki.CA
	srv    *Server
	url    string
	client *Client
	logBuf *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	db, _ := openDB(t, "sqlite")
	return newFixtureWith(t, db)
}

func newFixtureWith(t testing.TB, db *DB) *fixture {
	t.Helper()
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	// Made a week ago, so that tests can hold certificates issued days ago.
	ca, err := pki.NewCA(key, pki.CAOptions{CommonName: "served CA", Now: time.Now().Add(-7 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	buf := &syncBuffer{}
	srv := &Server{
		CA: ca, DB: db,
		AuthKeys: map[string][]byte{"scripts": []byte("0123456789abcdef0123456789abcdef")},
		Log:      log.New(buf, "", 0), Limiter: NewLimiter(10, time.Minute),
	}
	url := serve(t, srv)
	return &fixture{ca: ca, srv: srv, url: url, logBuf: buf, client: &Client{URL: url, Fingerprint: FingerprintHex(ca.Cert.Raw), Timeout: 10 * time.Second}}
}

func serve(t testing.TB, srv *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := srv.ServingCert([]string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l, cert) }()
	t.Cleanup(func() { cancel(); <-done })
	return "https://" + l.Addr().String()
}

func (f *fixture) token(t testing.TB, o TokenOptions) string {
	t.Helper()
	return (&dbFixture{ca: f.ca}).tokens(t, f.srv.DB, o, 1)[0]
}

func (f *fixture) enroll(t testing.TB, tok, cn string, hosts []string, profile pki.Profile) (*x509.Certificate, error) {
	t.Helper()
	p, err := ParseToken(tok)
	if err != nil {
		return nil, err
	}
	c := *f.client
	c.Fingerprint = p.Fingerprint
	ca, err := c.FetchCA(context.Background())
	if err != nil {
		return nil, err
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	sans, _, _ := pki.ParseSANs(hosts)
	csr, err := pki.NewCSR(key, cn, sans)
	if err != nil {
		t.Fatal(err)
	}
	return c.Sign(context.Background(), ca, Auth{Token: tok}, csr, profile, hosts)
}

func TestEnrollWithToken(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, TokenOptions{CN: "alice"})
	if !strings.HasPrefix(tok, "DTLS1-"+FingerprintHex(f.ca.Cert.Raw)+"-") {
		t.Fatalf("token %q does not pin the CA", tok)
	}
	cert, err := f.enroll(t, tok, "alice", nil, pki.ClientProfile)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "alice" || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("cert %v %v", cert.Subject, cert.ExtKeyUsage)
	}
	inv, _ := f.srv.DB.Issued(context.Background())
	if len(inv) != 1 || inv[0].CN != "alice" || inv[0].Serial != fmt.Sprintf("%x", cert.SerialNumber) || inv[0].Token == "" || inv[0].Source != "127.0.0.1" {
		t.Fatalf("inventory %+v", inv)
	}
	parsed, err := ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	secret := parsed.Secret
	if strings.Contains(f.logBuf.String(), secret) || !strings.Contains(f.logBuf.String(), "issued serial=") {
		t.Fatalf("log:\n%s", f.logBuf.String())
	}
	// The token file holds the hash, never the secret.
	list, _ := f.srv.DB.Tokens()
	if len(list) != 1 || list[0].Used != 1 || strings.Contains(list[0].Hash, secret) {
		t.Fatalf("tokens %+v", list)
	}
}

func TestServerDecidesTheSubject(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, TokenOptions{CN: "alice"})
	// The token names alice; a CSR for bob is refused without spending it.
	if _, err := f.enroll(t, tok, "bob", nil, pki.ClientProfile); err == nil || !strings.Contains(err.Error(), `it is for CN "alice"`) {
		t.Fatalf("CN outside the token: %v", err)
	}
	if _, err := f.enroll(t, tok, "alice", []string{"evil.example.com"}, pki.ClientProfile); err == nil || !strings.Contains(err.Error(), "does not allow the name") {
		t.Fatalf("SAN outside the token: %v", err)
	}
	if _, err := f.enroll(t, tok, "alice", nil, pki.ServerProfile); err == nil || !strings.Contains(err.Error(), "client certificate, not server") {
		t.Fatalf("profile outside the token: %v", err)
	}
	if _, err := f.enroll(t, tok, "alice", nil, pki.ClientProfile); err != nil {
		t.Fatalf("refusals spent the token: %v", err)
	}
	// A server token allows exactly its SANs.
	stok := f.token(t, TokenOptions{Profile: pki.ServerProfile, SANs: []string{"engine.example.com", "10.0.0.5"}})
	cert, err := f.enroll(t, stok, "whatever", []string{"engine.example.com"}, pki.ServerProfile)
	if err != nil {
		t.Fatal(err)
	}
	if cert.DNSNames[0] != "engine.example.com" || cert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Fatalf("server cert %v %v", cert.DNSNames, cert.ExtKeyUsage)
	}
}

func TestAttacks(t *testing.T) {
	f := newFixture(t)
	used := f.token(t, TokenOptions{})
	if _, err := f.enroll(t, used, "a", nil, pki.ClientProfile); err != nil {
		t.Fatal(err)
	}
	expired, _, _ := f.srv.DB.New(f.ca.Cert.Raw, TokenOptions{Profile: pki.ClientProfile, TTL: time.Second, Uses: 1, Now: time.Now().Add(-time.Hour)})
	good := f.token(t, TokenOptions{})
	p, _ := ParseToken(good)
	wrongSecret := ParsedToken{Fingerprint: p.Fingerprint, Secret: strings.Repeat("A", 43)}.String()

	tests := []struct {
		name, tok, want string
	}{
		{"reused token", used, "already been used"},
		{"expired token", expired, "expired"},
		{"wrong secret", wrongSecret, "unknown or revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.enroll(t, tt.tok, "a", nil, pki.ClientProfile)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}

	t.Run("man in the middle with another CA", func(t *testing.T) {
		mitm := newFixture(t)
		c := &Client{URL: mitm.url, Fingerprint: p.Fingerprint}
		if _, err := c.FetchCA(context.Background()); err == nil || !strings.Contains(err.Error(), "but the token pins") {
			t.Fatalf("err = %v", err)
		}
		// Even handed the right CA, the MITM's serving cert is not from it.
		if _, err := c.Sign(context.Background(), f.ca.Cert, Auth{Token: good}, mustCSR(t), pki.ClientProfile, nil); err == nil || !strings.Contains(err.Error(), "pinned CA") {
			t.Fatalf("sign through MITM: %v", err)
		}
		if list, _ := mitm.srv.DB.Tokens(); len(list) != 0 {
			t.Fatal("MITM saw a token")
		}
	})

	t.Run("CSR signed with the wrong key", func(t *testing.T) {
		// The last bytes of a CSR are its signature: change one, and the
		// CSR no longer proves possession of the key it carries.
		forged := append([]byte{}, mustCSR(t).Raw...)
		forged[len(forged)-2] ^= 0x55
		resp := postRaw(t, f, authSignBody(t, good, "", forged))
		if resp.code != 400 || !strings.Contains(resp.body, "signature does not verify") && !strings.Contains(resp.body, "does not parse") {
			t.Fatalf("%d %s", resp.code, resp.body)
		}
	})

	t.Run("oversized body", func(t *testing.T) {
		resp := postRaw(t, f, bytes.Repeat([]byte("x"), MaxBody+10))
		if resp.code != 413 || !strings.Contains(resp.body, "larger than") {
			t.Fatalf("%d %s", resp.code, resp.body)
		}
	})

	t.Run("malformed JSON", func(t *testing.T) {
		resp := postRaw(t, f, []byte(`{"token": "DTLS1-`))
		if resp.code != 400 || !strings.Contains(resp.body, "malformed JSON") {
			t.Fatalf("%d %s", resp.code, resp.body)
		}
	})

	// The good token survived all of that.
	if _, err := f.enroll(t, good, "a", nil, pki.ClientProfile); err != nil {
		t.Fatalf("good token after attacks: %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t)
	p, _ := ParseToken(f.token(t, TokenOptions{}))
	var codes []int
	for i := range 50 {
		wrong := ParsedToken{Fingerprint: p.Fingerprint, Secret: fmt.Sprintf("%043d", i)}.String()
		resp := postRaw(t, f, authSignBody(t, wrong, EncodeCSR(mustCSR(t)), nil))
		codes = append(codes, resp.code)
	}
	if codes[0] != 401 || codes[9] != 401 || codes[10] != 429 || codes[49] != 429 {
		t.Fatalf("codes %v", codes)
	}
	if !strings.Contains(f.logBuf.String(), "too-many-guesses") {
		t.Fatal("refusals not logged")
	}
	last := postRaw(t, f, authSignBody(t, ParsedToken{Fingerprint: p.Fingerprint, Secret: fmt.Sprintf("%043d", 99)}.String(), EncodeCSR(mustCSR(t)), nil))
	for _, w := range []string{"too many guesses from", "10 tokens no one issued or wrong auth keys within 1m0s", "try again in", "spent or has expired is not counted"} {
		if !strings.Contains(last.body, w) {
			t.Errorf("the 429 does not say %q: %s", w, last.body)
		}
	}
}

// TestRateLimitCountsGuessesOnly: an office behind one address whose
// laptops retry real tokens that were spent or expired is never blocked;
// tokens no one issued are guesses, and do count.
func TestRateLimitCountsGuessesOnly(t *testing.T) {
	f := newFixture(t)
	spent := f.token(t, TokenOptions{})
	if _, err := f.enroll(t, spent, "a", nil, pki.ClientProfile); err != nil {
		t.Fatal(err)
	}
	expired := f.token(t, TokenOptions{TTL: time.Minute, Now: time.Now().Add(-time.Hour)})
	tests := []struct {
		name  string
		token func(i int) string
		want  int // the status of the 30th attempt
	}{
		{"a spent token, retried", func(int) string { return spent }, 401},
		{"an expired token, retried", func(int) string { return expired }, 401},
		{"guessed secrets", func(i int) string {
			p, _ := ParseToken(spent)
			return ParsedToken{Fingerprint: p.Fingerprint, Secret: fmt.Sprintf("%043d", i)}.String()
		}, 429},
	}
	// One source throughout, in this order: the retries before the
	// guesses must leave it unblocked.
	for _, tc := range tests {
		var last rawResp
		for i := range 30 {
			// A fresh key each time: a retry with the same key would be
			// answered with the certificate already issued.
			last = postRaw(t, f, authSignBody(t, tc.token(i), EncodeCSR(mustCSR(t)), nil))
		}
		if last.code != tc.want {
			t.Errorf("%s: the 30th attempt got %d, want %d: %s", tc.name, last.code, tc.want, last.body)
		}
	}
}

func TestAuthKey(t *testing.T) {
	f := newFixture(t)
	ca, err := f.client.FetchCA(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := f.client.Sign(context.Background(), ca, Auth{AuthKey: f.srv.AuthKeys["scripts"]}, mustCSR(t), pki.ClientProfile, nil)
	if err != nil || cert.Subject.CommonName != "a" {
		t.Fatalf("%v %v", cert, err)
	}
	if _, err := f.client.Sign(context.Background(), ca, Auth{AuthKey: []byte("wrong")}, mustCSR(t), pki.ClientProfile, nil); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestTokenRevokeAndParse(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, TokenOptions{})
	list, _ := f.srv.DB.Tokens()
	if _, err := f.srv.DB.RevokeToken(list[0].ID[:6]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.enroll(t, tok, "a", nil, pki.ClientProfile); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked: %v", err)
	}
	for _, bad := range []string{"", "DTLS2-x-y", "DTLS1-abc-" + strings.Repeat("x", 43), "DTLS1-" + strings.Repeat("a", 64) + "-short"} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q) accepted", bad)
		}
	}
	if _, _, err := f.srv.DB.New(f.ca.Cert.Raw, TokenOptions{Profile: pki.ServerProfile, TTL: time.Hour, Uses: 1}); err == nil {
		t.Error("server token without SANs accepted")
	}
}

// TestLoad: 200 enrollments from 20 concurrent clients all succeed, with
// unique serials and 200 inventory entries. Reports rate and latency.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped in -short mode")
	}
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			db, _ := openDB(t, kind)
			loadTest(t, newFixtureWith(t, db), kind)
		})
	}
}

func loadTest(t *testing.T, f *fixture, store string) {
	const total, workers = 200, 20
	toks := make(chan string, total)
	for range total {
		toks <- f.token(t, TokenOptions{})
	}
	close(toks)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		serials   = map[string]bool{}
		errs      []error
		wg        sync.WaitGroup
	)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tok := range toks {
				t0 := time.Now()
				cert, err := f.enroll(t, tok, "load", nil, pki.ClientProfile)
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					serials[cert.SerialNumber.String()] = true
					latencies = append(latencies, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(errs) > 0 {
		t.Fatalf("%d enrollments failed, first: %v", len(errs), errs[0])
	}
	if len(serials) != total {
		t.Fatalf("%d unique serials for %d enrollments", len(serials), total)
	}
	inv, _ := f.srv.DB.Issued(context.Background())
	if len(inv) != total {
		t.Fatalf("inventory has %d entries", len(inv))
	}
	slices.Sort(latencies)
	t.Logf("load (%s): %d enrollments, %d clients: %.0f/s, p50 %s, p99 %s", store, total, workers,
		float64(total)/elapsed.Seconds(), latencies[total/2].Round(time.Millisecond), latencies[total*99/100].Round(time.Millisecond))
}

func mustCSR(t testing.TB) *x509.CertificateRequest {
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	csr, err := pki.NewCSR(key, "a", pki.SANs{})
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func authSignBody(t testing.TB, tok, csrPEM string, rawCSR []byte) []byte {
	if rawCSR != nil {
		csrPEM = EncodeCSR(&x509.CertificateRequest{Raw: rawCSR})
	}
	sr := fmt.Sprintf(`{"certificate_request": %q, "profile": "client"}`, csrPEM)
	return []byte(fmt.Sprintf(`{"token": %q, "request": %q}`, b64(tok), b64(sr)))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

type rawResp struct {
	code int
	body string
}

func postRaw(t testing.TB, f *fixture, body []byte) rawResp {
	t.Helper()
	hc := f.client.httpClient(&tls.Config{InsecureSkipVerify: true})
	resp, err := hc.Post(f.url+"/api/v1/cfssl/authsign", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return rawResp{resp.StatusCode, string(data)}
}

func TestRenewWithClientCertificate(t *testing.T) {
	f := newFixture(t)
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	// Issued 40 hours ago for 48: in the last third of its life.
	old, err := f.ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "alice", PublicKey: key.Public(), Lifetime: 2 * 24 * time.Hour, Now: time.Now().Add(-40 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	current := tls.Certificate{Certificate: [][]byte{old.Raw}, PrivateKey: key}
	newKey, _ := pki.GenerateKey(pki.ECDSAP256)
	csr, _ := pki.NewCSR(newKey, "mallory", pki.SANs{})
	cert, bundle, err := f.client.Renew(context.Background(), f.ca.Cert, current, csr)
	if err != nil {
		t.Fatal(err)
	}
	if len(bundle) != 1 || !bundle[0].Equal(f.ca.Cert) {
		t.Fatalf("outside a rotation the bundle is the CA alone: %d", len(bundle))
	}
	// Same subject and lifetime as the old certificate; the CSR's CN is ignored.
	if cert.Subject.CommonName != "alice" || cert.SerialNumber.Cmp(old.SerialNumber) == 0 || cert.NotAfter.Sub(cert.NotBefore) != old.NotAfter.Sub(old.NotBefore) {
		t.Fatalf("renewed %v %v %v", cert.Subject, cert.NotBefore, cert.NotAfter)
	}
	inv, _ := f.srv.DB.Issued(context.Background())
	if len(inv) != 1 || inv[0].Renews != fmt.Sprintf("%x", old.SerialNumber) {
		t.Fatalf("inventory %+v", inv)
	}
	// Without a certificate, or with one from another CA, renewal is refused.
	if _, _, err := f.client.Renew(context.Background(), f.ca.Cert, tls.Certificate{}, csr); err == nil || !strings.Contains(err.Error(), "renewal needs a client certificate from this CA") {
		t.Fatalf("no cert: %v", err)
	}
	other := newFixture(t)
	strangerCert, _ := other.ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "x", PublicKey: key.Public()})
	_, _, err = f.client.Renew(context.Background(), f.ca.Cert, tls.Certificate{Certificate: [][]byte{strangerCert.Raw}, PrivateKey: key}, csr)
	if err == nil || !strings.Contains(err.Error(), "the client certificate is not one of this CA's") {
		t.Fatalf("a certificate from another CA: %v", err)
	}
}

// TestRenewAfterExpiry: a certificate that expired is refused, saying
// how long ago, unless the service renews expired ones
// (RenewAfterExpiry); then it renews within the grace, for the holder of
// its key (the TLS handshake proves it), keeping its lifetime, and not
// past the grace, nor when revoked.
func TestRenewAfterExpiry(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	issue := func(cn string, expiredAgo time.Duration) (*x509.Certificate, tls.Certificate) {
		key := mustKey(t)
		// 24 h certificates, ended expiredAgo ago.
		c, err := f.ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: cn, Groups: []string{"ops"}, PublicKey: key.Public(),
			Lifetime: 24 * time.Hour, Now: time.Now().Add(-24*time.Hour - expiredAgo)})
		if err != nil {
			t.Fatal(err)
		}
		return c, tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key}
	}
	renew := func(current tls.Certificate) (*x509.Certificate, error) {
		csr, _ := pki.NewCSR(mustKey(t), "x", pki.SANs{})
		c, _, err := f.client.Renew(ctx, f.ca.Cert, current, csr)
		return c, err
	}
	slept, sleptTLS := issue("slept", 2*time.Hour)
	if _, err := renew(sleptTLS); err == nil || !strings.Contains(err.Error(), "the certificate expired 2h0m0s ago, and this service renews only valid certificates") {
		t.Fatalf("expired, no grace: %v", err)
	}
	f.srv.RenewAfterExpiry = 72 * time.Hour
	cert, err := renew(sleptTLS)
	if err != nil {
		t.Fatalf("expired 2h ago, 72h of grace: %v", err)
	}
	if cert.Subject.CommonName != "slept" || len(cert.Subject.Organization) != 1 || cert.NotAfter.Sub(cert.NotBefore) != slept.NotAfter.Sub(slept.NotBefore) || !cert.NotAfter.After(time.Now().Add(23*time.Hour)) {
		t.Errorf("renewed after expiry: %v, %v to %v", cert.Subject, cert.NotBefore, cert.NotAfter)
	}
	if !strings.Contains(f.logBuf.String(), "renewed-after-expiry serial=") {
		t.Errorf("the log does not say it renewed after expiry:\n%s", f.logBuf.String())
	}
	// Once per certificate, as any renewal.
	if _, err := renew(sleptTLS); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("a second renewal of the same expired certificate: %v", err)
	}
	_, longTLS := issue("long-gone", 100*time.Hour)
	if _, err := renew(longTLS); err == nil || !strings.Contains(err.Error(), "expired 100h0m0s ago, and this service renews expired certificates only within 72h0m0s of their end") {
		t.Errorf("past the grace: %v", err)
	}
	lost, lostTLS := issue("lost", time.Hour)
	if _, err := f.srv.DB.RevokeName(ctx, lost.Subject.CommonName, "laptop lost", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := renew(lostTLS); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked and expired: %v", err)
	}
	// Another CA's expired certificate is not this CA's, grace or not.
	other := newFixture(t)
	key := mustKey(t)
	stranger, _ := other.ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "x", PublicKey: key.Public(), Lifetime: time.Hour, Now: time.Now().Add(-2 * time.Hour)})
	if _, err := renew(tls.Certificate{Certificate: [][]byte{stranger.Raw}, PrivateKey: key}); err == nil || !strings.Contains(err.Error(), "not one of this CA's") {
		t.Errorf("another CA's expired certificate: %v", err)
	}
}

// TestServiceRules: through HTTPS, a retried enrollment gets the same
// certificate; lifetimes are asked for and capped; renewals only in the
// last third; /healthz answers.
func TestServiceRules(t *testing.T) {
	f := newFixture(t)
	f.srv.MaxLifetime = map[pki.Profile]time.Duration{pki.ClientProfile: 24 * time.Hour}
	ctx := context.Background()
	ca, err := f.client.FetchCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok := f.token(t, TokenOptions{CN: "alice"})
	key := mustKey(t)
	csr, _ := pki.NewCSR(key, "alice", pki.SANs{})
	c := *f.client
	c.Lifetime = time.Hour
	first, err := c.Sign(ctx, ca, Auth{Token: tok}, csr, pki.ClientProfile, nil)
	if err != nil {
		t.Fatal(err)
	}
	if life := first.NotAfter.Sub(first.NotBefore) - pki.Backdate; life != time.Hour {
		t.Errorf("asked for 1h, got %s", life)
	}
	again, err := c.Sign(ctx, ca, Auth{Token: tok}, csr, pki.ClientProfile, nil)
	if err != nil || again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("a retried enrollment: %v (same serial: %v)", err, err == nil && again.SerialNumber.Cmp(first.SerialNumber) == 0)
	}
	if !strings.Contains(f.logBuf.String(), "issued-again serial="+fmt.Sprintf("%x", first.SerialNumber)) {
		t.Errorf("log:\n%s", f.logBuf.String())
	}
	// With another key the used token is refused.
	csr2, _ := pki.NewCSR(mustKey(t), "alice", pki.SANs{})
	if _, err := c.Sign(ctx, ca, Auth{Token: tok}, csr2, pki.ClientProfile, nil); err == nil || !strings.Contains(err.Error(), "already been used") {
		t.Fatalf("used token, another key: %v", err)
	}
	// More than the service's maximum is refused, and the token survives.
	tok2 := f.token(t, TokenOptions{CN: "alice"})
	c.Lifetime = 48 * time.Hour
	if _, err := c.Sign(ctx, ca, Auth{Token: tok2}, csr2, pki.ClientProfile, nil); err == nil || !strings.Contains(err.Error(), "longer than this service issues") {
		t.Fatalf("48h against a 24h maximum: %v", err)
	}
	c.Lifetime = 0
	def, err := c.Sign(ctx, ca, Auth{Token: tok2}, csr2, pki.ClientProfile, nil)
	if err != nil {
		t.Fatal(err)
	}
	if life := def.NotAfter.Sub(def.NotBefore) - pki.Backdate; life != 24*time.Hour {
		t.Errorf("the default under a 24h maximum: %s", life)
	}
	// A fresh certificate is too early to renew.
	current := tls.Certificate{Certificate: [][]byte{first.Raw}, PrivateKey: key}
	if _, _, err := f.client.Renew(ctx, ca, current, csr); err == nil || !strings.Contains(err.Error(), "too early to renew") {
		t.Fatalf("renewing a fresh certificate: %v", err)
	}
	// /healthz
	hc := f.client.httpClient(pki.ClientTLS(ca, "127.0.0.1", nil))
	resp, err := hc.Get(f.url + HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), FingerprintHex(ca.Raw)) {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	f.srv.DB.Close()
	resp, err = hc.Get(f.url + HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("healthz with the database closed: %d", resp.StatusCode)
	}
}

// TestClientFailsOver: with several URLs, a dead replica is skipped; with
// none alive the error names the last one tried, after a bounded number of
// tries.
func TestClientFailsOver(t *testing.T) {
	f := newFixture(t)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "https://" + dead.Addr().String()
	dead.Close()
	c := *f.client
	c.URL = deadURL + "," + f.url
	ctx := context.Background()
	ca, err := c.FetchCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sign(ctx, ca, Auth{Token: f.token(t, TokenOptions{CN: "a"})}, mustCSR(t), pki.ClientProfile, nil); err != nil {
		t.Fatalf("with one dead replica first: %v", err)
	}
	c.URL = deadURL
	start := time.Now()
	if _, err := c.FetchCA(ctx); err == nil || !strings.Contains(err.Error(), "cannot reach the CA at "+deadURL) {
		t.Fatalf("no replica alive: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second || d < 700*time.Millisecond {
		t.Errorf("3 tries with pauses of 250 and 500 ms took %s", d)
	}
	if _, err := (&Client{URL: "https://a:1,ftp://b"}).FetchCA(ctx); err == nil || !strings.Contains(err.Error(), `"ftp://b"`) {
		t.Errorf("a bad URL in the list: %v", err)
	}
}

// TestRenewDuringRotation: while a rotation is under way (SetCA with the
// new CA as next), a certificate of the old CA renews at once, from the
// new CA, and the answer carries both; a client of the new CA is accepted
// too; after the rotation (SetCA with the new CA alone) the old one is
// refused at the TLS handshake.
func TestRenewDuringRotation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := mustKey(t)
	old, _ := f.ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "laptop", PublicKey: key.Public(), Lifetime: 90 * 24 * time.Hour})
	nk := mustKey(t)
	next, err := pki.NewCA(nk, pki.CAOptions{CommonName: "next CA", Now: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.SetCA(f.ca, next); err != nil {
		t.Fatal(err)
	}
	csr, _ := pki.NewCSR(key, "laptop", pki.SANs{})
	cert, bundle, err := f.client.Renew(ctx, f.ca.Cert, tls.Certificate{Certificate: [][]byte{old.Raw}, PrivateKey: key}, csr)
	if err != nil {
		t.Fatalf("a fresh certificate of the old CA during a rotation: %v", err)
	}
	if cert.CheckSignatureFrom(next.Cert) != nil || len(bundle) != 2 || !bundle[1].Equal(next.Cert) {
		t.Fatalf("renewed from %s with a bundle of %d", cert.Issuer, len(bundle))
	}
	if !strings.Contains(f.logBuf.String(), "renewed-to-new-ca serial=") {
		t.Errorf("log:\n%s", f.logBuf.String())
	}
	// The rotation is over: the service trusts and signs with the new CA
	// alone; the old CA's certificate no longer authenticates.
	if err := f.srv.SetCA(next, nil); err != nil {
		t.Fatal(err)
	}
	csr2, _ := pki.NewCSR(mustKey(t), "laptop", pki.SANs{})
	if _, _, err := f.client.Renew(ctx, next.Cert, tls.Certificate{Certificate: [][]byte{old.Raw}, PrivateKey: key}, csr2); err == nil {
		t.Fatal("the old CA's certificate renewed after the rotation")
	}
}

// TestServiceClampsClientLifetime: without --max-lifetime, a lifetime the
// client asks for beyond the profile's default (90 days) is cut to that
// default, and the answer says so; days an admin put in the token are not
// cut.
func TestServiceClampsClientLifetime(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ca, err := f.client.FetchCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := *f.client
	var notes []string
	c.Notes = func(n string) { notes = append(notes, n) }
	life := func(cert *x509.Certificate) time.Duration { return cert.NotAfter.Sub(cert.NotBefore) - pki.Backdate }

	c.Lifetime = 100000 * time.Hour
	csr, _ := pki.NewCSR(mustKey(t), "alice", pki.SANs{})
	cert, err := c.Sign(ctx, ca, Auth{Token: f.token(t, TokenOptions{CN: "alice"})}, csr, pki.ClientProfile, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := life(cert); got != pki.DefaultClientLifetime {
		t.Errorf("asked for 100000h without a maximum: %s, want %s", got, pki.DefaultClientLifetime)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "the lifetime asked for (100000h0m0s) is longer than this service issues for client certificates without a --max-lifetime") {
		t.Errorf("the answer should say it was shortened: %q", notes)
	}
	if !strings.Contains(f.logBuf.String(), "shortened ") {
		t.Errorf("the service's log should say it shortened one:\n%s", f.logBuf.String())
	}

	// Within the default: as asked, no note.
	notes = nil
	c.Lifetime = 30 * 24 * time.Hour
	csr, _ = pki.NewCSR(mustKey(t), "bob", pki.SANs{})
	if cert, err = c.Sign(ctx, ca, Auth{Token: f.token(t, TokenOptions{CN: "bob"})}, csr, pki.ClientProfile, nil); err != nil || life(cert) != 30*24*time.Hour || len(notes) != 0 {
		t.Errorf("30 days: %v, %v, notes %q", err, cert != nil && life(cert) == 30*24*time.Hour, notes)
	}

	// The admin's token says 365 days: the client may ask for that.
	c.Lifetime = 365 * 24 * time.Hour
	csr, _ = pki.NewCSR(mustKey(t), "carol", pki.SANs{})
	if cert, err = c.Sign(ctx, ca, Auth{Token: f.token(t, TokenOptions{CN: "carol", Days: 365})}, csr, pki.ClientProfile, nil); err != nil || life(cert) != 365*24*time.Hour || len(notes) != 0 {
		t.Errorf("token --days 365: %v, life %v, notes %q", err, cert != nil && life(cert) == 365*24*time.Hour, notes)
	}
}

// TestServiceRefusesWeakCSRKey: a CSR with a small RSA key is refused
// with what is wrong (its size), not "signature does not verify".
func TestServiceRefusesWeakCSRKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ca, err := f.client.FetchCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "alice"}}, weak)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.client.Sign(ctx, ca, Auth{Token: f.token(t, TokenOptions{CN: "alice"})}, csr, pki.ClientProfile, nil)
	if err == nil || !strings.Contains(err.Error(), "the CSR's key is too weak: RSA key has 1024 bits; at least 2048 are required") {
		t.Fatalf("a 1024-bit RSA CSR: %v", err)
	}
}
