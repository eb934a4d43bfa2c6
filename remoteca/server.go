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
	"strings"
	"sync"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// MaxBody is the largest request body the service reads; a CSR is ~1 KiB.
const MaxBody = 64 * 1024

// Server is the signing service behind `docker tls ca serve`.
type Server struct {
	CA        *pki.CA
	Tokens    TokenStore
	Inventory *Inventory
	// AuthKeys are cfssl-style HMAC keys by name, for scripted use.
	AuthKeys map[string][]byte
	// Log receives one line per issuance or refusal; never a secret.
	Log *log.Logger
	// Limiter refuses sources after repeated failures.
	Limiter *Limiter
	// Now is the clock; time.Now if nil.
	Now func() time.Time
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
	return mux
}

// ServingCert issues the service's own TLS certificate from the CA, for
// the names clients will dial, kept in memory only.
func (s *Server) ServingCert(names []string) (*tls.Certificate, error) {
	sans, _, err := pki.ParseSANs(names)
	if err != nil {
		return nil, err
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return nil, err
	}
	life := 30 * 24 * time.Hour
	if left := time.Until(s.CA.Cert.NotAfter) - time.Hour; left < life {
		life = left
	}
	cert, err := s.CA.Issue(pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans, PublicKey: key.Public(), Lifetime: life})
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw, s.CA.Cert.Raw}, PrivateKey: key, Leaf: cert}, nil
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

// tlsConfig asks clients for a certificate from this CA without requiring
// one: enrollment has none yet; renewal authenticates with the one it has.
func (s *Server) tlsConfig(cert *tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(s.CA.Cert)
	return &tls.Config{
		Certificates: []tls.Certificate{*cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}
}

// RenewPath is docker-tls's renewal endpoint: a client proves who it is with
// its still-valid certificate (mutual TLS), as step-ca and swarm do, and
// needs no token.
const RenewPath = "/api/v1/docker-tls/renew"

// handleRenew signs a CSR for the holder of a valid client certificate from
// this CA, with the same subject and lifetime; the CSR may carry a new key.
func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) {
	src := source(r)
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		s.logf("refused source=%s reason=renew-without-certificate", src)
		writeJSON(w, http.StatusUnauthorized, nil, "renewal needs a valid client certificate from this CA; an expired one needs a new token (docker tls ca token)")
		return
	}
	old := r.TLS.VerifiedChains[0][0]
	var sr SignRequest
	if code, msg := readBody(w, r, &sr); code != 0 {
		writeJSON(w, code, nil, msg)
		return
	}
	csr, err := parseCSR(sr.CertificateRequest)
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, nil, "renewal CSR: "+err.Error())
		return
	}
	isClient := false
	for _, u := range old.ExtKeyUsage {
		isClient = isClient || u == x509.ExtKeyUsageClientAuth
	}
	if !isClient {
		writeJSON(w, http.StatusForbidden, nil, "only client certificates renew here")
		return
	}
	life := old.NotAfter.Sub(old.NotBefore) - pki.Backdate
	cert, err := s.CA.SignCSR(csr, pki.IssueRequest{Profile: pki.ClientProfile, CommonName: old.Subject.CommonName, Lifetime: life, Now: s.now()})
	if err != nil {
		writeJSON(w, http.StatusBadRequest, nil, err.Error())
		return
	}
	rec := Issued{Serial: fmt.Sprintf("%x", cert.SerialNumber), CN: cert.Subject.CommonName, Profile: string(pki.ClientProfile),
		NotAfter: cert.NotAfter, Source: src, IssuedAt: s.now().UTC(), Renews: fmt.Sprintf("%x", old.SerialNumber)}
	if s.Inventory != nil {
		if err := s.Inventory.Add(rec); err != nil {
			writeJSON(w, http.StatusInternalServerError, nil, "the certificate could not be recorded; nothing was issued")
			return
		}
	}
	s.logf("renewed serial=%s cn=%q renews=%s source=%s notAfter=%s", rec.Serial, rec.CN, rec.Renews, src, rec.NotAfter.Format(time.RFC3339))
	writeJSON(w, http.StatusOK, SignResult{Certificate: string(pki.EncodeCertificate(cert))}, "")
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
	writeJSON(w, http.StatusOK, InfoResult{
		Certificate:  string(pki.EncodeCertificate(s.CA.Cert)),
		Usages:       []string{"signing", "client auth", "server auth"},
		ExpiryString: s.CA.Cert.NotAfter.UTC().Format(time.RFC3339),
	}, "")
}

func (s *Server) handleAuthSign(w http.ResponseWriter, r *http.Request) {
	src := source(r)
	if s.Limiter != nil {
		if wait := s.Limiter.Blocked(src, s.now()); wait > 0 {
			s.logf("refused source=%s reason=too-many-failures", src)
			writeJSON(w, http.StatusTooManyRequests, nil,
				fmt.Sprintf("too many failed attempts from %s: try again in %s", src, wait.Round(time.Second)))
			return
		}
	}
	fail := func(code int, msg string) {
		if s.Limiter != nil && (code == http.StatusUnauthorized || code == http.StatusForbidden) {
			s.Limiter.Fail(src, s.now())
		}
		s.logf("refused source=%s code=%d reason=%q", src, code, msg)
		writeJSON(w, code, nil, msg)
	}
	var ar AuthenticatedRequest
	if code, msg := readBody(w, r, &ar); code != 0 {
		fail(code, msg)
		return
	}
	var sr SignRequest
	if err := json.Unmarshal(ar.Request, &sr); err != nil {
		fail(http.StatusBadRequest, "malformed sign request: "+err.Error())
		return
	}
	csr, err := parseCSR(sr.CertificateRequest)
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	if err := csr.CheckSignature(); err != nil {
		fail(http.StatusBadRequest, "the CSR's signature does not verify: it was not signed by the key it carries")
		return
	}
	profile, err := pki.ParseProfile(defaultString(sr.Profile, string(pki.ClientProfile)))
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	hosts := sr.Hosts
	if len(hosts) == 0 {
		hosts = append(append([]string{}, csr.DNSNames...), ipStrings(csr)...)
	}
	sans, _, err := pki.ParseSANs(hosts)
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	req := pki.IssueRequest{Profile: profile, CommonName: csr.Subject.CommonName, SANs: sans}
	rec := Issued{Profile: string(profile), Source: src}

	if tok := string(ar.Token); strings.HasPrefix(tok, TokenPrefix+"-") {
		parsed, err := ParseToken(tok)
		if err != nil {
			fail(http.StatusUnauthorized, err.Error())
			return
		}
		if parsed.Fingerprint != FingerprintHex(s.CA.Cert.Raw) {
			fail(http.StatusUnauthorized, "the token is for another CA")
			return
		}
		t, err := s.Tokens.Consume(parsed.Secret, Request{Profile: profile, CN: csr.Subject.CommonName, SANs: sans}, s.now())
		if err != nil {
			code := http.StatusUnauthorized
			switch {
			case errors.Is(err, ErrTokenMismatch):
				code = http.StatusForbidden
			case errors.Is(err, ErrNeedName):
				code = http.StatusBadRequest
			}
			fail(code, err.Error())
			return
		}
		// The server decides the subject: the token's CN wins.
		if t.CN != "" {
			req.CommonName = t.CN
		}
		if t.Days > 0 {
			req.Lifetime = time.Duration(t.Days) * 24 * time.Hour
		}
		rec.Token = t.ID
	} else {
		name, ok := s.checkAuthKey(ar)
		if !ok {
			fail(http.StatusUnauthorized, "authentication failed: unknown token or wrong auth key")
			return
		}
		rec.AuthKey = name
	}
	if profile == pki.ClientProfile && req.CommonName == "" {
		fail(http.StatusBadRequest, "the CSR has no CN: a client certificate needs a name")
		return
	}
	req.Now = s.now()
	cert, err := s.CA.SignCSR(csr, req)
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	rec.Serial = fmt.Sprintf("%x", cert.SerialNumber)
	rec.CN, rec.SANs, rec.NotAfter, rec.IssuedAt = cert.Subject.CommonName, pki.CertSANs(cert).Strings(), cert.NotAfter, s.now().UTC()
	if s.Inventory != nil {
		if err := s.Inventory.Add(rec); err != nil {
			s.logf("error source=%s serial=%s: inventory: %v", src, rec.Serial, err)
			writeJSON(w, http.StatusInternalServerError, nil, "the certificate could not be recorded; nothing was issued")
			return
		}
	}
	s.logf("issued serial=%s cn=%q profile=%s token=%s authkey=%s source=%s notAfter=%s",
		rec.Serial, rec.CN, rec.Profile, defaultString(rec.Token, "-"), defaultString(rec.AuthKey, "-"), src, rec.NotAfter.Format(time.RFC3339))
	writeJSON(w, http.StatusOK, SignResult{Certificate: string(pki.EncodeCertificate(cert))}, "")
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

// Limiter counts failed attempts per source in a sliding window and blocks
// a source that fails too often. Its memory is bounded.
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

// Fail records a failure from src.
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
