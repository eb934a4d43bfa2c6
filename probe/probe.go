// Package probe owns `docker tls verify`: it checks a Docker engine endpoint
// and the client material meant for it, offline (chain, EKUs, validity,
// key/certificate match) and live (DNS, TCP, a recorded TLS handshake,
// mutual TLS and the Docker API), and turns every failure into one plain
// sentence with the fix. It knows nothing of cobra, contexts or key stores:
// callers hand it certificates and a key.
package probe

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Status is the outcome of one check.
type Status string

// The outcomes, from best to worst.
const (
	OK   Status = "ok"
	Info Status = "info" // a fact worth showing, never a problem
	Skip Status = "skip" // not run, because an earlier check failed or --offline
	Warn Status = "warn"
	Fail Status = "fail"
)

// Check is one line of a report. IDs are stable; see the README's JSON section.
type Check struct {
	ID      string `json:"id"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Target is what to check: an endpoint and the client material for it.
type Target struct {
	// Name is the context name, or the host when there is no context.
	Name string
	// Host is tcp://HOST:PORT.
	Host string
	// CA is the certificate the server must chain to (the context's ca.pem,
	// its first certificate); MoreCAs are the rest of a ca.pem bundle,
	// trusted too, as the docker CLI does (during a CA rotation: old and
	// new).
	CA      *x509.Certificate
	MoreCAs []*x509.Certificate
	// Cert and Key are the client's certificate and key. Key may be nil;
	// KeyProblem then says why (locked, missing from the keyring, …).
	Cert       *x509.Certificate
	Key        crypto.Signer
	KeyProblem string
	// KeyFileProblem, when set, says that the key the docker CLI will load
	// (the context's key.pem) is not the one verify checked, and KeyFileFix
	// what repairs it.
	KeyFileProblem, KeyFileFix string
	// Locked is true when the context's key.pem copy is removed, so the
	// docker CLI cannot use it even though verify can.
	Locked bool
	// CAName is the local CA that issued the client certificate, if any,
	// for the fix commands.
	CAName string
	// AgentSocket, for agent-mode contexts, is the agent's socket the
	// docker CLI uses; its health is checked too.
	AgentSocket string
	// CAURL is the CA service the context enrolled with: an expired
	// certificate then needs a new enrollment, not a renewal; SignIn says
	// it enrolled by signing in, and a new sign-in renews it.
	CAURL  string
	SignIn bool
	// RenewalProblem, when set, says that the automatic renewal of the
	// client certificate fails.
	RenewalProblem string
}

// cas is the CA bundle: CA, then MoreCAs.
func (t Target) cas() []*x509.Certificate {
	if t.CA == nil {
		return nil
	}
	return append([]*x509.Certificate{t.CA}, t.MoreCAs...)
}

// roots is the bundle as a pool.
func (t Target) roots() *x509.CertPool {
	roots := x509.NewCertPool()
	for _, c := range t.cas() {
		roots.AddCert(c)
	}
	return roots
}

// Options tune a run.
type Options struct {
	// Timeout bounds each network step (DNS, connect, handshake, API call).
	Timeout time.Duration
	// Offline skips every network check.
	Offline bool
	// Now is the time certificates are checked at; time.Now() if zero.
	Now time.Time
	// Arch asks the engine's /version for its architecture too. Without
	// it the version and OS come from the Server header of the /_ping
	// answer: dockerd answers /version only after asking containerd, runc
	// and docker-init theirs, which takes longer than the rest of a check.
	Arch bool
}

// Engine is what the Docker API said about itself.
type Engine struct {
	Version    string `json:"version"`
	APIVersion string `json:"apiVersion"`
	OS         string `json:"os"`
	// Arch is known from /version only (Options.Arch, or an engine whose
	// answers do not say its version).
	Arch string `json:"arch"`
}

// Report is the result of checking one target.
type Report struct {
	Name string `json:"name"`
	Host string `json:"host"`
	// Status is the worst status of the checks: ok, warn or fail.
	Status Status  `json:"status"`
	Checks []Check `json:"checks"`
	Engine *Engine `json:"engine,omitempty"`
	// ServerSerial is the serial number (hex) of the certificate the
	// engine presented, when a handshake happened.
	ServerSerial string        `json:"serverSerial,omitempty"`
	Duration     time.Duration `json:"durationNs"`
}

// Worst is the worst status of the report.
func (r *Report) Worst() Status {
	worst := OK
	for _, c := range r.Checks {
		if rank(c.Status) > rank(worst) {
			worst = c.Status
		}
	}
	return worst
}

// Count returns how many checks ended with s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

// First returns the first check with status s, or nil.
func (r *Report) First(s Status) *Check {
	for i := range r.Checks {
		if r.Checks[i].Status == s {
			return &r.Checks[i]
		}
	}
	return nil
}

func rank(s Status) int {
	switch s {
	case Fail:
		return 3
	case Warn:
		return 2
	}
	return 0
}

func (r *Report) add(id string, s Status, fix string, format string, args ...any) {
	r.Checks = append(r.Checks, Check{ID: id, Status: s, Message: fmt.Sprintf(format, args...), Fix: fix})
}

// Run checks one target: endpoint, local material, then (unless offline)
// network, TLS and the Docker API. A failed step skips the steps that
// depend on it, so the first failure is the one to fix.
func Run(ctx context.Context, t Target, o Options) *Report {
	start := time.Now()
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	r := &Report{Name: t.Name, Host: t.Host}
	defer func() {
		r.Duration = time.Since(start)
		r.Status = r.Worst()
	}()

	hostname, port, ok := checkEndpoint(r, t.Host)
	checkLocal(r, t, o.Now)
	if t.AgentSocket != "" && !o.Offline {
		checkAgent(ctx, r, t.AgentSocket, o.Timeout)
	}
	if !ok {
		return r
	}
	if o.Offline {
		r.add("network", Skip, "", "network checks skipped (--offline)")
		return r
	}
	conn, ok := checkNetwork(ctx, r, hostname, port, o.Timeout)
	if !ok {
		return r
	}
	hs, ok := handshake(ctx, r, conn, t, hostname, o)
	if !ok {
		return r
	}
	checkServer(r, t, hs, hostname, o.Now)
	checkAPI(ctx, r, t, hs, hostname, port, o)
	return r
}

// RunAll checks every target, at most parallel at a time, and returns the
// reports in the order of targets.
func RunAll(ctx context.Context, targets []Target, o Options, parallel int) []*Report {
	if parallel < 1 {
		parallel = 1
	}
	reports := make([]*Report, len(targets))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			reports[i] = Run(ctx, t, o)
		}()
	}
	wg.Wait()
	return reports
}

// checkEndpoint parses tcp://HOST:PORT.
func checkEndpoint(r *Report, host string) (hostname, port string, ok bool) {
	u, err := url.Parse(host)
	if err != nil || (u.Scheme != "tcp" && u.Scheme != "https") || u.Hostname() == "" {
		r.add("endpoint", Fail, "docker tls context create NAME --host tcp://HOST:2376 --force",
			"the endpoint %q is not tcp://HOST:PORT, so TLS does not apply to it", host)
		return "", "", false
	}
	hostname, port = u.Hostname(), u.Port()
	if port == "" {
		port = "2376"
	}
	switch port {
	case "2375":
		r.add("endpoint", Warn, "listen on 2376 for TLS: dockerd -H tcp://0.0.0.0:2376 --tlsverify …",
			"%s uses port 2375, by convention Docker's unencrypted port; TLS engines listen on 2376", host)
	default:
		r.add("endpoint", OK, "", "tcp://%s", net.JoinHostPort(hostname, port))
	}
	return hostname, port, true
}

// checkLocal checks the CA, the client certificate and the key, offline.
func checkLocal(r *Report, t Target, now time.Time) {
	issueFix := t.issueFix()
	if t.RenewalProblem != "" {
		r.add("renewal", Warn, "docker tls renew "+t.Name+" (or see docker tls agent status)", "%s", t.RenewalProblem)
	}
	checkCA(r, t, now)
	c := t.Cert
	if c == nil {
		r.add("client-cert", Fail, issueFix, "no client certificate: dockerd --tlsverify refuses every client without one")
	} else {
		checkClientCert(r, t, c, now, issueFix)
	}
	checkClientKey(r, t, issueFix)
}

// issueFix is how the user gets the context a new certificate, as the
// context was made.
func (t Target) issueFix() string {
	switch {
	case t.SignIn:
		return "docker tls renew " + t.Name + " (it signs you in again with the team's identity provider)"
	case t.CAURL != "":
		// Renewal authenticates with the current certificate: once it has
		// expired, only a service run with --renew-after-expiry renews it
		// (for a while); otherwise a new token enrolls again.
		return "docker tls renew " + t.Name + " (a CA service run with --renew-after-expiry renews it for a while after its end); otherwise ask the CA's operator for a token (docker tls ca token), then docker tls enroll " + t.Name + " --force --ca-url " + t.CAURL + " --token file:TOKEN --host " + t.Host
	}
	fix := "docker tls context create " + t.Name + " --host " + t.Host + " --issue --force"
	if t.CAName != "" {
		fix += " --ca " + t.CAName
	}
	return fix
}

// checkCA checks the CA certificate the server is verified with.
func checkCA(r *Report, t Target, now time.Time) {
	switch {
	case t.CA == nil:
		r.add("ca", Fail, "give the CA that signed the engine's certificate (--ca FILE)", "no CA certificate to check the server against")
	case !t.CA.IsCA || !t.CA.BasicConstraintsValid:
		r.add("ca", Fail, "use the CA certificate (ca.pem), not a leaf certificate", "ca.pem (%q) is not a CA certificate", t.CA.Subject.CommonName)
	case now.After(t.CA.NotAfter):
		r.add("ca", Fail, "create a new CA (docker tls ca init) and re-issue the server and client certificates", "the CA %q expired on %s", t.CA.Subject.CommonName, day(t.CA.NotAfter))
	case now.Before(t.CA.NotBefore):
		r.add("ca", Fail, "check this machine's clock", "the CA %q is not valid until %s", t.CA.Subject.CommonName, day(t.CA.NotBefore))
	default:
		more := ""
		if len(t.MoreCAs) > 0 {
			more = fmt.Sprintf(" (and %d more in ca.pem, trusted too)", len(t.MoreCAs))
		}
		r.add("ca", OK, "", "CA %q, valid until %s%s", t.CA.Subject.CommonName, day(t.CA.NotAfter), more)
	}
}

// checkClientKey checks the client key: there, matching the certificate,
// usable by the docker CLI.
func checkClientKey(r *Report, t Target, issueFix string) {
	c := t.Cert
	switch {
	case t.Key == nil && t.KeyProblem != "":
		r.add("client-key", Fail, "", "%s", t.KeyProblem)
	case t.Key == nil:
		r.add("client-key", Fail, issueFix, "no client key")
	case c == nil:
	case !keyMatches(t.Key.Public(), c.PublicKey):
		r.add("client-key", Fail, issueFix, "the client key does not match the client certificate %q: they are from different issues", c.Subject.CommonName)
	case t.KeyFileProblem != "":
		r.add("client-key", Fail, t.KeyFileFix, "%s", t.KeyFileProblem)
	case t.Locked:
		r.add("client-key", Warn, "docker tls unlock "+t.Name, "the key is in the key store, but the context is locked: the docker CLI cannot use it until it is unlocked")
	default:
		r.add("client-key", OK, "", "the key matches the certificate")
	}
}

// keyMatches says whether two public keys are the same key.
func keyMatches(a, b crypto.PublicKey) bool {
	pub, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(b)
}

func checkClientCert(r *Report, t Target, c *x509.Certificate, now time.Time, issueFix string) {
	cn := c.Subject.CommonName
	hasClientAuth := false
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			hasClientAuth = true
		}
	}
	renewFix := issueFix
	switch {
	case now.After(c.NotAfter):
		r.add("client-cert", Fail, renewFix, "the client certificate %q expired on %s", cn, day(c.NotAfter))
		return
	case now.Before(c.NotBefore):
		r.add("client-cert", Fail, "check the clocks of this machine and of the CA's", "the client certificate %q is not valid until %s", cn, day(c.NotBefore))
		return
	case len(c.ExtKeyUsage) > 0 && !hasClientAuth:
		r.add("client-cert", Fail, renewFix, "the client certificate %q lacks extended key usage clientAuth (it is a %s certificate), so dockerd rejects it", cn, ekuList(c))
		return
	}
	if t.CA != nil {
		if _, err := c.Verify(x509.VerifyOptions{Roots: t.roots(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			r.add("client-cert", Warn, "",
				"the client certificate %q was issued by %q, not by the context's CA %q: this works only if the daemon trusts %q",
				cn, c.Issuer.CommonName, t.CA.Subject.CommonName, c.Issuer.CommonName)
			return
		}
	}
	life := c.NotAfter.Sub(c.NotBefore)
	left := c.NotAfter.Sub(now)
	days := int(left.Hours() / 24)
	if left < 14*24*time.Hour || left < life/3 {
		r.add("client-cert", Warn, renewFix, "the client certificate %q expires in %d days (%s)", cn, days, day(c.NotAfter))
		return
	}
	r.add("client-cert", OK, "", "client %q, clientAuth, valid until %s (%d days)", cn, day(c.NotAfter), days)
}

func ekuList(c *x509.Certificate) string {
	var names []string
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			names = append(names, "serverAuth")
		case x509.ExtKeyUsageClientAuth:
			names = append(names, "clientAuth")
		default:
			names = append(names, fmt.Sprintf("EKU %d", u))
		}
	}
	return strings.Join(names, "+")
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02") }
