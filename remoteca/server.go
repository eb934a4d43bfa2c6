package remoteca

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/policy"
)

// MaxBody is the largest request body the service reads; a CSR is ~1 KiB.
const MaxBody = 64 * 1024

// Server is the signing service behind `docker tls ca serve`.
type Server struct {
	// CA signs; Next, during a rotation of the CA (ca rotate), is the CA
	// that replaces it: clients of both are accepted, renewals are signed
	// by Next and answered with both CAs, so enrolled laptops follow the
	// rotation with no token. SetCA changes them while serving.
	CA   *pki.CA
	Next *pki.CA
	// DB keeps tokens, the inventory and revocations; replicas share one.
	DB *DB
	// MaxLifetime caps the certificates of a profile (0: the profile's
	// default is also its maximum).
	MaxLifetime map[pki.Profile]time.Duration
	// AuthKeys are cfssl-style HMAC keys by name, for scripted use.
	AuthKeys map[string][]byte
	// Log receives one line per issuance or refusal; never a secret.
	Log *log.Logger
	// Limiter refuses sources after repeated failures.
	Limiter *Limiter
	// RenewAfterExpiry renews a client certificate that expired less than
	// this long ago (0: never), as step-ca's allowRenewAfterExpiry: the
	// TLS handshake proves its holder has the old key, and a revoked
	// certificate or name never renews. A laptop that slept past its
	// certificate's end then needs no new token.
	RenewAfterExpiry time.Duration
	// OIDC, when set (and connected), issues client certificates to users
	// signed in with the team's identity provider.
	OIDC *OIDC
	// CatalogAdmins may publish engines to the catalog and remove them:
	// user:CN, group:NAME (or * for any certificate of the CA).
	CatalogAdmins []policy.Subject
	// Now is the clock; time.Now if nil.
	Now func() time.Time

	auth  atomic.Pointer[authority]
	names []string // what ServingCert was asked for
}

// authority is what the service signs and serves with at a moment.
type authority struct {
	ca, next *pki.CA
	serving  *tls.Certificate
	pool     *x509.CertPool // client certificates of either CA
}

// current is the authority now; the first call builds it from CA and Next.
func (s *Server) current() *authority {
	if a := s.auth.Load(); a != nil {
		return a
	}
	a := newAuthority(s.CA, s.Next, nil)
	s.auth.CompareAndSwap(nil, a)
	return s.auth.Load()
}

func newAuthority(ca, next *pki.CA, serving *tls.Certificate) *authority {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if next != nil {
		pool.AddCert(next.Cert)
	}
	return &authority{ca: ca, next: next, serving: serving, pool: pool}
}

// signer is the CA new certificates come from: the new one during a
// rotation.
func (a *authority) signer() *pki.CA {
	if a.next != nil {
		return a.next
	}
	return a.ca
}

// bundle is the CAs a client should trust now, as PEM.
func (a *authority) bundle() string {
	b := pki.EncodeCertificate(a.ca.Cert)
	if a.next != nil {
		b = append(b, pki.EncodeCertificate(a.next.Cert)...)
	}
	return string(b)
}

// SetCA switches the service to ca (and next, during a rotation) without
// stopping: new connections get a serving certificate from ca.
func (s *Server) SetCA(ca, next *pki.CA) error {
	cert, err := servingCert(ca, s.names)
	if err != nil {
		return err
	}
	s.auth.Store(newAuthority(ca, next, cert))
	return nil
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Handler returns the HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/cfssl/info", s.handleInfo)
	mux.HandleFunc("/api/v1/cfssl/authsign", s.handleAuthSign)
	mux.HandleFunc(RenewPath, s.handleRenew)
	mux.HandleFunc(HealthPath, s.handleHealth)
	mux.HandleFunc(CRLPath, s.handleCRL)
	mux.HandleFunc(OIDCPath, s.handleSignIn)
	mux.HandleFunc(CatalogPath, s.handleCatalog)
	mux.HandleFunc(PublishPath, s.handlePublish)
	mux.HandleFunc(UnpublishPath, s.handleUnpublish)
	return mux
}

// DefaultNames are the names the service's certificate carries when none
// are given: this machine's loopback names and its host name.
func DefaultNames() []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		names = append(names, h)
	}
	return names
}

// ServingCert issues the service's own TLS certificate from the CA, for
// the names clients will dial, kept in memory only.
func (s *Server) ServingCert(names []string) (*tls.Certificate, error) {
	s.names = names
	cert, err := servingCert(s.CA, names)
	if err != nil {
		return nil, err
	}
	s.auth.Store(newAuthority(s.CA, s.Next, cert))
	return cert, nil
}

func servingCert(ca *pki.CA, names []string) (*tls.Certificate, error) {
	sans, _, err := pki.ParseSANs(names)
	if err != nil {
		return nil, err
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return nil, err
	}
	life := 30 * 24 * time.Hour
	if left := time.Until(ca.Cert.NotAfter) - time.Hour; left < life {
		life = left
	}
	cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans, PublicKey: key.Public(), Lifetime: life})
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw, ca.Cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// Serve runs HTTPS on l until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, l net.Listener, cert *tls.Certificate) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		TLSConfig:         s.tlsConfig(cert),
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(l, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// tlsConfig asks clients for a certificate without requiring one:
// enrollment has none yet; renewal authenticates with the one it has. The
// handshake proves the client holds the certificate's key; the handler
// checks the certificate itself (renewalCert), so that one that expired
// within RenewAfterExpiry can still be told apart from one of another CA.
// Each connection gets the authority of its moment.
func (s *Server) tlsConfig(cert *tls.Certificate) *tls.Config {
	if a := s.current(); a.serving == nil {
		s.auth.Store(newAuthority(a.ca, a.next, cert))
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			a := s.current()
			return &tls.Config{
				Certificates: []tls.Certificate{*a.serving},
				ClientAuth:   tls.RequestClientCert,
				ClientCAs:    a.pool, // named in the request, so clients pick the right certificate
				MinVersion:   tls.VersionTLS12,
			}, nil
		},
	}
}

// RenewPath is docker-tls's renewal endpoint: a client proves who it is with
// its still-valid certificate (mutual TLS), as step-ca and swarm do, and
// needs no token.
const RenewPath = "/api/v1/docker-tls/renew"

// Health is what HealthPath answers: the CA's fingerprint and, during a
// rotation, the new CA's, which tells enrolled clients to renew now.
type Health struct {
	Status string `json:"status"`
	CA     string `json:"ca"`
	Next   string `json:"next,omitempty"`
}

// HealthPath answers 200 while the service can issue (its database
// answers), 503 otherwise: what a load balancer in front of replicas asks.
const HealthPath = "/healthz"

// refusal is a request the service turns down, with the HTTP status and
// the sentence the client shows.
type refusal struct {
	code int
	msg  string
}

func (r *refusal) Error() string { return r.msg }

func refuse(code int, format string, args ...any) error {
	return &refusal{code: code, msg: fmt.Sprintf(format, args...)}
}

// status maps an error of an enrollment or renewal to what the client is
// told. Database failures are not the client's fault: 503, try again.
func status(err error) (int, string) {
	var r *refusal
	switch {
	case errors.As(err, &r):
		return r.code, r.msg
	case errors.Is(err, ErrTokenMismatch), errors.Is(err, ErrIdentityRevoked), errors.Is(err, ErrCertRevoked), errors.Is(err, ErrAlreadyRenewed), errors.Is(err, ErrSignInUsed):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, ErrNeedName):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, ErrTokenUnknown), errors.Is(err, ErrTokenExpired), errors.Is(err, ErrTokenUsed):
		return http.StatusUnauthorized, err.Error()
	}
	return http.StatusServiceUnavailable, "the service could not record the certificate, so nothing was issued: try again"
}

// MinLifetime is the shortest certificate the service issues.
const MinLifetime = 10 * time.Second

// lifetime decides a new certificate's life: the token's, else the one
// asked for, else the profile's default, never more than the service's
// maximum for the profile (asking for more is refused, not cut short:
// whoever asked planned around it). Without a maximum (no --max-lifetime),
// a life the client chose (clientChose), above the profile's default and
// not allowed by the token's days, is cut to that default and shortened
// says so: a client does not decide alone to hold a certificate until the
// CA's own end. Days an admin put in the token are the admin's choice.
func (s *Server) lifetime(profile pki.Profile, asked time.Duration, tokenDays int, signer *pki.CA, clientChose bool) (life time.Duration, shortened string, err error) {
	max := s.MaxLifetime[profile]
	def := pki.DefaultClientLifetime
	if profile == pki.ServerProfile {
		def = pki.DefaultServerLifetime
	}
	life = asked
	if tokenDays > 0 {
		byToken := time.Duration(tokenDays) * 24 * time.Hour
		if life == 0 || life > byToken {
			life = byToken
		}
	} else if clientChose && max == 0 && life > def {
		shortened = fmt.Sprintf("the lifetime asked for (%s) is longer than this service issues for %s certificates without a --max-lifetime (%s): issued for %s", life, profile, def, def)
		life = def
	}
	if life == 0 {
		life = def
		if max > 0 && life > max {
			life = max
		}
	}
	switch {
	case life < MinLifetime:
		return 0, "", refuse(http.StatusBadRequest, "a lifetime of %s is too short: give at least %s", life, MinLifetime)
	case max > 0 && life > max:
		return 0, "", refuse(http.StatusForbidden, "a lifetime of %s is longer than this service issues for %s certificates (%s): ask for less (--lifetime)", life, profile, max)
	}
	if left := time.Until(signer.Cert.NotAfter); life > left {
		if left < MinLifetime {
			return 0, "", refuse(http.StatusForbidden, "the CA expires on %s: it cannot issue any more; the CA needs replacing", signer.Cert.NotAfter.UTC().Format(time.RFC3339))
		}
		life = left // never past the CA's own end
	}
	return life, shortened, nil
}

// RenewalStart is when a certificate issued at issuedAt may be renewed:
// in the last third of its life, so that one certificate yields one
// successor, not a chain of fresh ones.
func RenewalStart(issuedAt, notAfter time.Time) time.Time {
	return notAfter.Add(-notAfter.Sub(issuedAt) / 3)
}

// handleRenew signs a CSR for the holder of a valid client certificate from
// this CA, with the same subject and lifetime; the CSR may carry a new key.
// The rules: not revoked (the certificate or its CN), in the last third of
// its life, once per certificate (a retry with the same key gets the same
// answer), never longer than the service's maximum or past the CA.
func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) {
	src := source(r)
	fail := func(code int, msg string) {
		s.logf("refused source=%s code=%d reason=%q", src, code, msg)
		writeJSON(w, code, nil, msg)
	}
	now := s.now()
	a := s.current()
	old, expired, err := s.renewalCert(r.TLS, a, now)
	if err != nil {
		fail(status(err))
		return
	}
	var sr SignRequest
	if code, msg := readBody(w, r, &sr); code != 0 {
		fail(code, msg)
		return
	}
	csr, err := parseCSR(sr.CertificateRequest)
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		fail(http.StatusBadRequest, "renewal CSR: "+err.Error())
		return
	}
	if !slices.Contains(old.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		fail(http.StatusForbidden, "only client certificates renew here")
		return
	}
	// During a rotation a certificate of the old CA renews at any time:
	// its holder must move to the new CA before the old one is retired.
	rotating := a.next != nil && old.CheckSignatureFrom(a.ca.Cert) == nil
	cert, rec, replay, err := s.DB.Renew(r.Context(), Renewal{Old: old, PublicKey: PublicKeyID(csr.RawSubjectPublicKeyInfo), Source: src, Now: now},
		func(issuedAt time.Time) (*x509.Certificate, error) {
			if from := RenewalStart(issuedAt, old.NotAfter); now.Before(from) && !rotating {
				return nil, refuse(http.StatusForbidden, "too early to renew: this certificate can be renewed from %s (the last third of its life)", from.Local().Format(time.RFC3339))
			}
			life, _, err := s.lifetime(pki.ClientProfile, old.NotAfter.Sub(issuedAt), 0, a.signer(), false)
			if err != nil {
				return nil, err
			}
			cert, err := a.signer().SignCSR(csr, pki.IssueRequest{Profile: pki.ClientProfile, CommonName: old.Subject.CommonName, Groups: pki.GroupsOf(old), Lifetime: life, Now: now})
			if err != nil {
				return nil, refuse(http.StatusBadRequest, "%s", err.Error())
			}
			return cert, nil
		})
	if err != nil {
		code, msg := status(err)
		if code >= 500 {
			s.logf("error source=%s renews=%x: %v", src, old.SerialNumber, err)
		}
		fail(code, msg)
		return
	}
	s.logf("%s serial=%s cn=%q renews=%s source=%s notAfter=%s", renewalEvent(replay, expired, rotating), rec.Serial, rec.CN, rec.Renews, src, rec.NotAfter.Format(time.RFC3339))
	writeJSON(w, http.StatusOK, SignResult{Certificate: string(pki.EncodeCertificate(cert)), Bundle: a.bundle()}, "")
}

// renewalEvent names a renewal in the log: a retry given the same
// certificate again, one after expiry, one onto the new CA of a rotation.
func renewalEvent(replay, expired, rotating bool) string {
	event := "renewed"
	if replay {
		event = "renewed-again"
	}
	if expired {
		event += "-after-expiry"
	}
	if rotating {
		event += "-to-new-ca"
	}
	return event
}

// renewalCert is the certificate a renewal presents, checked: it chains
// to the CA (either CA during a rotation) and is valid now or, with
// RenewAfterExpiry, expired less than that long ago (expired is then
// true). The TLS handshake proved the client holds its key.
func (s *Server) renewalCert(cs *tls.ConnectionState, a *authority, now time.Time) (leaf *x509.Certificate, expired bool, err error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return nil, false, refuse(http.StatusUnauthorized, "renewal needs a client certificate from this CA; without one, enroll with a new token (docker tls ca token)")
	}
	leaf = cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: a.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: now}
	if now.After(leaf.NotAfter) {
		// Checked as of its last valid moment: the chain must have held
		// then; whether that was recent enough is decided below.
		opts.CurrentTime = leaf.NotAfter
	}
	if _, err := leaf.Verify(opts); err != nil {
		return nil, false, refuse(http.StatusUnauthorized, "the client certificate is not one of this CA's: renewal needs one this CA issued")
	}
	if !now.After(leaf.NotAfter) {
		return leaf, false, nil
	}
	ago := now.Sub(leaf.NotAfter).Round(time.Second)
	if ago >= time.Minute {
		ago = ago.Round(time.Minute)
	}
	switch {
	case s.RenewAfterExpiry <= 0:
		return nil, false, refuse(http.StatusUnauthorized, "the certificate expired %s ago, and this service renews only valid certificates", ago)
	case now.Sub(leaf.NotAfter) > s.RenewAfterExpiry:
		return nil, false, refuse(http.StatusUnauthorized, "the certificate expired %s ago, and this service renews expired certificates only within %s of their end", ago, s.RenewAfterExpiry)
	}
	return leaf, true, nil
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.DB.Ping(ctx); err != nil {
		s.logf("unhealthy: %v", err)
		writeJSON(w, http.StatusServiceUnavailable, nil, "the service's database does not answer")
		return
	}
	a := s.current()
	h := Health{Status: "ok", CA: FingerprintHex(a.ca.Cert.Raw)}
	if a.next != nil {
		h.Next = FingerprintHex(a.next.Cert.Raw)
	}
	writeJSON(w, http.StatusOK, h, "")
}

// CRLPath answers the CA's certificate revocation list (DER,
// application/pkix-crl), for engines that pull it. It needs no client
// certificate: a CRL is public and signed.
const CRLPath = "/crl"

func (s *Server) handleCRL(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, nil, "GET the CRL")
		return
	}
	ca := s.current().ca
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	der, err := s.DB.CRL(ctx, FingerprintHex(ca.Cert.Raw), s.now(), ca.CRL)
	if err != nil {
		s.logf("error: crl: %v", err)
		writeJSON(w, http.StatusServiceUnavailable, nil, "the CRL cannot be made now: try again")
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(der)
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log.Printf(format, args...)
	}
}

func writeJSON(w http.ResponseWriter, code int, result any, errMsg string) {
	resp := Response{Success: errMsg == "", Result: result, Errors: []ResponseError{}, Messages: []any{}}
	if errMsg != "" {
		resp.Errors = append(resp.Errors, ResponseError{Code: code, Message: errMsg})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(resp)
}

func source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// readBody reads a bounded JSON body into v.
func readBody(w http.ResponseWriter, r *http.Request, v any) (int, string) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "use POST"
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", MaxBody)
		}
		return http.StatusBadRequest, "cannot read the request body"
	}
	if len(data) == 0 && v != nil {
		return 0, ""
	}
	if err := json.Unmarshal(data, v); err != nil {
		return http.StatusBadRequest, "malformed JSON: " + err.Error()
	}
	return 0, ""
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	var req InfoRequest
	if code, msg := readBody(w, r, &req); code != 0 {
		writeJSON(w, code, nil, msg)
		return
	}
	ca := s.current().ca
	res := InfoResult{
		Certificate:  string(pki.EncodeCertificate(ca.Cert)),
		Usages:       []string{"signing", "client auth", "server auth"},
		ExpiryString: ca.Cert.NotAfter.UTC().Format(time.RFC3339),
	}
	if s.OIDC != nil {
		res.OIDC = &OIDCInfo{Issuer: s.OIDC.Issuer, ClientID: s.OIDC.ClientID}
	}
	writeJSON(w, http.StatusOK, res, "")
}

func (s *Server) handleAuthSign(w http.ResponseWriter, r *http.Request) {
	src := source(r)
	if s.Limiter != nil {
		if wait := s.Limiter.Blocked(src, s.now()); wait > 0 {
			s.logf("refused source=%s reason=too-many-guesses", src)
			writeJSON(w, http.StatusTooManyRequests, nil,
				fmt.Sprintf("too many guesses from %s: %d tokens no one issued or wrong auth keys within %s; try again in %s (a real token that was spent or has expired is not counted)",
					src, s.Limiter.Max, s.Limiter.Window, wait.Round(time.Second)))
			return
		}
	}
	fail := func(code int, msg string) {
		s.logf("refused source=%s code=%d reason=%q", src, code, msg)
		writeJSON(w, code, nil, msg)
	}
	var ar AuthenticatedRequest
	if code, msg := readBody(w, r, &ar); code != 0 {
		fail(code, msg)
		return
	}
	job, err := parseSignRequest(ar, src, s.now())
	if err != nil {
		fail(status(err))
		return
	}
	var (
		cert   *x509.Certificate
		rec    *Issued
		replay bool
	)
	if tok := string(ar.Token); strings.HasPrefix(tok, TokenPrefix+"-") {
		cert, rec, replay, err = s.enrollByToken(r.Context(), job, tok)
	} else {
		cert, rec, err = s.signByAuthKey(r.Context(), job, ar)
	}
	if err != nil {
		code, msg := status(err)
		if code >= 500 {
			s.logf("error source=%s: %v", src, err)
		}
		if s.Limiter != nil && isGuess(err) {
			s.Limiter.Fail(src, s.now())
		}
		fail(code, msg)
		return
	}
	event := "issued"
	if replay {
		event = "issued-again" // the same token and key retried: the same certificate
	}
	s.logf("%s serial=%s cn=%q profile=%s token=%s authkey=%s source=%s notAfter=%s",
		event, rec.Serial, rec.CN, rec.Profile, defaultString(rec.Token, "-"), defaultString(rec.AuthKey, "-"), src, rec.NotAfter.Format(time.RFC3339))
	writeJSON(w, http.StatusOK, SignResult{Certificate: string(pki.EncodeCertificate(cert)), Note: job.note}, "")
}

// signJob is one sign request, read and checked.
type signJob struct {
	csr     *x509.CertificateRequest
	profile pki.Profile
	sans    pki.SANs
	asked   time.Duration // the lifetime asked for, 0 for none
	src     string
	now     time.Time
	// note is said in the answer when the lifetime was cut short.
	note string
}

// parseSignRequest reads a sign request: a CSR signed by its own key, a
// profile, the names (the CSR's when the request gives none) and the
// lifetime asked for. Its errors are refusals (400).
func parseSignRequest(ar AuthenticatedRequest, src string, now time.Time) (*signJob, error) {
	var sr SignRequest
	if err := json.Unmarshal(ar.Request, &sr); err != nil {
		return nil, refuse(http.StatusBadRequest, "malformed sign request: %s", err)
	}
	csr, err := parseCSR(sr.CertificateRequest)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%s", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, refuse(http.StatusBadRequest, "the CSR's signature does not verify: it was not signed by the key it carries")
	}
	profile, err := pki.ParseProfile(defaultString(sr.Profile, string(pki.ClientProfile)))
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%s", err)
	}
	hosts := sr.Hosts
	if len(hosts) == 0 {
		hosts = append(append([]string{}, csr.DNSNames...), ipStrings(csr)...)
	}
	sans, _, err := pki.ParseSANs(hosts)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%s", err)
	}
	job := &signJob{csr: csr, profile: profile, sans: sans, src: src, now: now}
	if sr.Lifetime != "" {
		if job.asked, err = time.ParseDuration(sr.Lifetime); err != nil || job.asked <= 0 {
			return nil, refuse(http.StatusBadRequest, "lifetime %q: give a duration such as 24h", sr.Lifetime)
		}
	}
	return job, nil
}

// sign issues job's certificate for cn in groups, with the token's
// lifetime in days (0: none), from the current CA: enrollments keep to the CA the token
// pins and the client trusts; a rotation moves them later, by renewal.
func (s *Server) sign(job *signJob, cn string, groups []string, tokenDays int) (*x509.Certificate, error) {
	if job.profile == pki.ClientProfile && cn == "" {
		return nil, refuse(http.StatusBadRequest, "the CSR has no CN: a client certificate needs a name")
	}
	ca := s.current().ca
	life, shortened, err := s.lifetime(job.profile, job.asked, tokenDays, ca, job.asked > 0)
	if err != nil {
		return nil, err
	}
	if shortened != "" {
		job.note = shortened
		s.logf("shortened source=%s cn=%q: %s", job.src, cn, shortened)
	}
	cert, err := ca.SignCSR(job.csr, pki.IssueRequest{Profile: job.profile, CommonName: cn, Groups: groups, SANs: job.sans, Lifetime: life, Now: job.now})
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%s", err.Error())
	}
	return cert, nil
}

// enrollByToken spends a one-time token on job (or answers a retry of the
// same token and key with the same certificate: replay).
func (s *Server) enrollByToken(ctx context.Context, job *signJob, tok string) (*x509.Certificate, *Issued, bool, error) {
	parsed, err := ParseToken(tok)
	if err != nil {
		return nil, nil, false, guess{refuse(http.StatusUnauthorized, "%s", err)}
	}
	if parsed.Fingerprint != FingerprintHex(s.current().ca.Cert.Raw) {
		return nil, nil, false, refuse(http.StatusUnauthorized, "the token is for another CA")
	}
	csr := job.csr
	e := Enrollment{Secret: parsed.Secret, Req: Request{Profile: job.profile, CN: csr.Subject.CommonName, SANs: job.sans},
		PublicKey: PublicKeyID(csr.RawSubjectPublicKeyInfo), Source: job.src, Now: job.now}
	return s.DB.Enroll(ctx, e, func(t *Token) (*x509.Certificate, error) {
		// The server decides the subject: the token's CN wins, and the
		// groups are the token's alone (the CSR's O is ignored).
		cn := csr.Subject.CommonName
		if t.CN != "" {
			cn = t.CN
		}
		return s.sign(job, cn, t.Groups, t.Days)
	})
}

// signByAuthKey signs job for a cfssl client that proved an auth key,
// and records the certificate before it is given out.
func (s *Server) signByAuthKey(ctx context.Context, job *signJob, ar AuthenticatedRequest) (*x509.Certificate, *Issued, error) {
	name, ok := s.checkAuthKey(ar)
	if !ok {
		return nil, nil, guess{refuse(http.StatusUnauthorized, "authentication failed: unknown token or wrong auth key")}
	}
	cert, err := s.sign(job, job.csr.Subject.CommonName, nil, 0)
	if err != nil {
		return nil, nil, err
	}
	rec := newIssued(cert, job.src, job.now)
	rec.AuthKey = name
	if err := s.DB.Record(ctx, rec); err != nil {
		return nil, nil, fmt.Errorf("serial=%s: inventory: %w", rec.Serial, err)
	}
	return cert, rec, nil
}

// checkAuthKey verifies a cfssl HMAC: Token = HMAC-SHA256(key, Request).
func (s *Server) checkAuthKey(ar AuthenticatedRequest) (string, bool) {
	for name, key := range s.AuthKeys {
		mac := hmac.New(sha256.New, key)
		mac.Write(ar.Request)
		if hmac.Equal(mac.Sum(nil), ar.Token) {
			return name, true
		}
	}
	return "", false
}

func defaultString(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// guess marks a refusal that guessing gets: a token that does not parse
// or that no one issued, a wrong auth key. The Limiter counts only these:
// a real token retried after it was spent or expired is no guess, and
// counting it would lock out an office behind one address.
type guess struct{ error }

func (g guess) Unwrap() error { return g.error }

func isGuess(err error) bool {
	var g guess
	return errors.As(err, &g)
}

// Limiter counts guesses (see guess) per source in a sliding window and
// blocks a source that guesses too often. Its memory is bounded.
type Limiter struct {
	Max    int           // failures allowed in Window
	Window time.Duration // how long failures count, and how long a block lasts
	mu     sync.Mutex
	fails  map[string][]time.Time
}

// NewLimiter allows max failures per window per source.
func NewLimiter(max int, window time.Duration) *Limiter {
	return &Limiter{Max: max, Window: window, fails: map[string][]time.Time{}}
}

const limiterSources = 10000

// Fail records a guess from src.
func (l *Limiter) Fail(src string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) >= limiterSources {
		for k, v := range l.fails { // drop expired entries, or any one
			if len(v) == 0 || now.Sub(v[len(v)-1]) > l.Window {
				delete(l.fails, k)
			}
		}
		if len(l.fails) >= limiterSources {
			for k := range l.fails {
				delete(l.fails, k)
				break
			}
		}
	}
	l.fails[src] = append(l.prune(src, now), now)
}

func (l *Limiter) prune(src string, now time.Time) []time.Time {
	v := l.fails[src]
	i := 0
	for i < len(v) && now.Sub(v[i]) > l.Window {
		i++
	}
	return v[i:]
}

// Blocked returns how long src must wait, or 0.
func (l *Limiter) Blocked(src string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.prune(src, now)
	l.fails[src] = v
	if len(v) == 0 {
		delete(l.fails, src)
	}
	if len(v) < l.Max {
		return 0
	}
	return l.Window - now.Sub(v[len(v)-l.Max])
}
