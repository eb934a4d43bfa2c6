package probe

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/moby/moby/client"

	"github.com/docker-tls/docker-tls/pki"
)

// checkNetwork resolves the host and connects to it.
func checkNetwork(ctx context.Context, r *Report, hostname, port string, timeout time.Duration) (net.Conn, bool) {
	addrs := []string{hostname}
	if net.ParseIP(hostname) == nil {
		lctx, cancel := context.WithTimeout(ctx, timeout)
		found, err := net.DefaultResolver.LookupHost(lctx, hostname)
		cancel()
		if err != nil || len(found) == 0 {
			r.add("dns", Fail, "check the host name in the endpoint, or this machine's DNS settings",
				"the host name %q does not resolve: %s", hostname, shortErr(err))
			return nil, false
		}
		addrs = found
		r.add("dns", OK, "", "%s resolves to %s", hostname, strings.Join(found, ", "))
	}
	d := net.Dialer{Timeout: timeout}
	var errs []error
	for _, a := range addrs {
		addr := net.JoinHostPort(a, port)
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			r.add("tcp", OK, "", "connected to %s", addr)
			return conn, true
		}
		errs = append(errs, err)
	}
	err := errs[0]
	target := net.JoinHostPort(hostname, port)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		r.add("tcp", Fail, "start dockerd with -H tcp://0.0.0.0:"+port+" (see docker tls server issue), or check the port",
			"connection to %s refused: nothing listens on that port", target)
	case isTimeout(err):
		r.add("tcp", Fail, "check that the host is up and that a firewall lets port "+port+" through",
			"no answer from %s within %s: the host is down or a firewall drops the packets", target, timeout)
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		r.add("tcp", Fail, "check the address and this machine's network (VPN, routes)",
			"%s is unreachable from this machine: no route to it", target)
	default:
		r.add("tcp", Fail, "", "cannot connect to %s: %s", target, shortErr(err))
	}
	return nil, false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
}

func shortErr(err error) string {
	if err == nil {
		return "no addresses"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return "no such host"
		}
		return dnsErr.Err
	}
	return err.Error()
}

// handshakeResult is what the TLS handshake showed.
type handshakeResult struct {
	conn      *tls.Conn
	state     tls.ConnectionState
	requested bool     // the server asked for a client certificate
	presented bool     // we sent one
	trusted   [][]byte // the CA names (DER) the server said it accepts
	timeout   time.Duration
}

// handshake runs a TLS handshake that accepts any server certificate, so
// that what the server presented can be examined and explained rather than
// refused with an opaque error. Nothing is sent before it is checked.
func handshake(ctx context.Context, r *Report, conn net.Conn, t Target, hostname string, o Options) (*handshakeResult, bool) {
	hs := &handshakeResult{timeout: o.Timeout}
	cfg := &tls.Config{
		ServerName:         hostname,
		InsecureSkipVerify: true, // verified below, against the context's CA only, with explanations
		MinVersion:         tls.VersionTLS12,
		GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			hs.requested = true
			hs.trusted = cri.AcceptableCAs
			if t.Cert == nil || t.Key == nil {
				return &tls.Certificate{}, nil
			}
			hs.presented = true
			return &tls.Certificate{Certificate: [][]byte{t.Cert.Raw}, PrivateKey: t.Key, Leaf: t.Cert}, nil
		},
	}
	_ = conn.SetDeadline(time.Now().Add(o.Timeout))
	rec := &recordingConn{Conn: conn}
	tc := tls.Client(rec, cfg)
	hctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	err := tc.HandshakeContext(hctx)
	if err == nil {
		hs.conn, hs.state = tc, tc.ConnectionState()
		return hs, true
	}
	defer conn.Close()
	var rh tls.RecordHeaderError
	switch {
	case errors.As(err, &rh):
		// What the port sent: the TLS client may have buffered more than
		// the 5-byte header, so use what the recording conn saw.
		head := rec.seen
		if len(head) < 24 {
			_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			more := make([]byte, 64)
			n, _ := conn.Read(more)
			head = append(head, more[:n]...)
		}
		if bytes.HasPrefix(head, []byte("HTTP/")) {
			r.add("tls", Fail, "restart dockerd with --tlsverify --tlscacert --tlscert --tlskey (docker tls server issue HOST --out DIR prints them)",
				"this engine is exposed without TLS: it answered in plain HTTP, so anyone who reaches the port is root on the host")
		} else {
			r.add("tls", Fail, "check the port: Docker with TLS normally listens on 2376",
				"the port does not speak TLS; it sent %q: is this the Docker port?", printable(head))
		}
	case isTimeout(err):
		r.add("tls", Fail, "check that this port is dockerd's TLS port, and that nothing in between holds the connection",
			"the port accepted the connection but sent no TLS answer within %s", o.Timeout)
	case strings.Contains(err.Error(), "remote error: tls:"):
		// TLS 1.2 servers reject a client certificate inside the handshake.
		hs.state = tc.ConnectionState()
		if len(hs.state.PeerCertificates) > 0 {
			checkServer(r, t, hs, hostname, o.Now)
		}
		addClientRejected(r, t, hs, err)
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		r.add("tls", Fail, "check that this is dockerd's TLS port and that it allows TLS 1.2 or later",
			"the server closed the connection during the TLS handshake")
	default:
		r.add("tls", Fail, "", "TLS handshake failed: %s", err)
	}
	return nil, false
}

// errConn remembers the first read or write error on a connection.
type errConn struct {
	*tls.Conn
	mu  sync.Mutex
	err error
}

func (c *errConn) note(err error) {
	if err != nil && !errors.Is(err, io.EOF) {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
}

func (c *errConn) Read(p []byte) (int, error)  { n, err := c.Conn.Read(p); c.note(err); return n, err }
func (c *errConn) Write(p []byte) (int, error) { n, err := c.Conn.Write(p); c.note(err); return n, err }

func (c *errConn) firstErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// recordingConn keeps the first bytes the server sends, to name what a port
// speaks when it is not TLS.
type recordingConn struct {
	net.Conn
	seen []byte
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if room := 64 - len(c.seen); room > 0 && n > 0 {
		c.seen = append(c.seen, p[:min(n, room)]...)
	}
	return n, err
}

// printable shows the first bytes a non-TLS server sent, safely.
func printable(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		if !unicode.IsPrint(r) || r > unicode.MaxASCII {
			return '.'
		}
		return r
	}, string(b))
	return strings.TrimSpace(s)
}

// checkServer examines the server certificate the handshake recorded.
func checkServer(r *Report, t Target, hs *handshakeResult, hostname string, now time.Time) {
	leaf := hs.state.PeerCertificates[0]
	r.ServerSerial = fmt.Sprintf("%x", leaf.SerialNumber)
	reissue := serverIssueFix(leaf, hostname, t.CAName)
	if t.CA != nil {
		checkServerChain(r, t, hs.state.PeerCertificates, reissue, now)
	}

	// Names: Go (and so the docker CLI) checks only the SANs.
	sans := pki.CertSANs(leaf)
	switch {
	case sans.Len() == 0:
		r.add("server-name", Fail, reissue+" (then restart dockerd with it)",
			"the server's certificate has no subject alternative names, only CN=%q, and the docker CLI ignores the CN", leaf.Subject.CommonName)
	case leaf.VerifyHostname(hostname) != nil:
		r.add("server-name", Fail, reissue+" (then restart dockerd with it)",
			"the server's certificate is valid for %s, not for %s", strings.Join(sans.Strings(), ", "), hostname)
	default:
		r.add("server-name", OK, "", "the server's certificate names %s", hostname)
	}

	if len(leaf.ExtKeyUsage) == 0 || slices.ContainsFunc(leaf.ExtKeyUsage, func(u x509.ExtKeyUsage) bool {
		return u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny
	}) {
		r.add("server-eku", OK, "", "serverAuth")
	} else {
		r.add("server-eku", Fail, reissue, "the server's certificate lacks extended key usage serverAuth (it is a %s certificate)", ekuList(leaf))
	}
	checkServerExpiry(r, leaf, reissue, now)
	if hs.state.HandshakeComplete {
		r.add("protocol", Info, "", "%s, %s", tls.VersionName(hs.state.Version), tls.CipherSuiteName(hs.state.CipherSuite))
	}
}

// checkServerChain checks the server's chain against the context's CAs
// only (never the system roots).
func checkServerChain(r *Report, t Target, peer []*x509.Certificate, reissue string, now time.Time) {
	leaf := peer[0]
	inter := x509.NewCertPool()
	for _, c := range peer[1:] {
		inter.AddCert(c)
	}
	at := now
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		at = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2) // expiry gets its own message
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: t.roots(), Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err == nil {
		root := chains[0][len(chains[0])-1]
		r.add("server-chain", OK, "", "the server's certificate chains to %q", root.Subject.CommonName)
		return
	}
	which := fmt.Sprintf("the context's CA %q (%s)", t.CA.Subject.CommonName, short(pki.Fingerprint(t.CA)))
	if len(t.MoreCAs) > 0 {
		which = fmt.Sprintf("any of the %d CAs in the context's ca.pem (%q, …)", len(t.MoreCAs)+1, t.CA.Subject.CommonName)
	}
	r.add("server-chain", Fail, "use the engine's CA in the context (docker tls import/context create --ca-file), or re-issue the engine's certificate from this CA: "+reissue,
		"the server's certificate (%s) was issued by %q, not by %s",
		short(pki.Fingerprint(leaf)), leaf.Issuer.CommonName, which)
}

// checkServerExpiry checks the server certificate's validity period.
func checkServerExpiry(r *Report, leaf *x509.Certificate, reissue string, now time.Time) {
	switch left := leaf.NotAfter.Sub(now); {
	case now.After(leaf.NotAfter):
		r.add("server-expiry", Fail, reissue+" (then restart dockerd with it)", "the server's certificate expired on %s", day(leaf.NotAfter))
	case now.Before(leaf.NotBefore):
		r.add("server-expiry", Fail, "check the clocks of this machine and of the engine", "the server's certificate is not valid until %s", day(leaf.NotBefore))
	case left < 14*24*time.Hour:
		r.add("server-expiry", Warn, reissue+" (then restart dockerd with it)", "the server's certificate expires in %d days (%s)", int(left.Hours()/24), day(leaf.NotAfter))
	default:
		r.add("server-expiry", OK, "", "valid until %s", day(leaf.NotAfter))
	}
}

// anonymousAccepted reports whether the server answers /_ping to a client
// that presents no certificate.
func anonymousAccepted(ctx context.Context, hostname, port string, timeout time.Duration) bool {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: &tls.Config{
		ServerName: hostname, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, // only the server's behaviour matters here
	}}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", net.JoinHostPort(hostname, port))
	if err != nil {
		return false
	}
	defer conn.Close()
	code, _, err := ping(conn, timeout)
	return err == nil && code < 500
}

// ping sends GET /_ping over an open connection, as the docker CLI's first
// request, and returns the HTTP status and, for an error, what the JSON
// answer says: the docker-tls agent's "reason", else the engine's "message".
func ping(conn net.Conn, timeout time.Duration) (int, string, error) {
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, "GET /_ping HTTP/1.1\r\nHost: docker\r\nUser-Agent: docker-tls-verify\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var answer struct {
		Message string `json:"message"`
		Reason  string `json:"reason"`
	}
	if resp.StatusCode != http.StatusOK {
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&answer)
	}
	if answer.Reason != "" {
		return resp.StatusCode, answer.Reason, nil
	}
	return resp.StatusCode, answer.Message, nil
}

// serverIssueFix is the command that makes a server certificate valid for
// what the current one names plus the name that was dialled.
func serverIssueFix(leaf *x509.Certificate, hostname, caName string) string {
	names := []string{}
	seen := map[string]bool{}
	for _, n := range append(pki.CertSANs(leaf).Strings(), hostname) {
		n = strings.TrimPrefix(strings.TrimPrefix(n, "DNS:"), "IP:")
		if !seen[strings.ToLower(n)] {
			seen[strings.ToLower(n)] = true
			names = append(names, n)
		}
	}
	fix := "docker tls server issue " + strings.Join(names, " ")
	if caName != "" && caName != "default" {
		fix += " --ca " + caName
	}
	return fix + " --out DIR"
}

func short(fp string) string {
	if len(fp) > 23 {
		return "SHA-256 " + fp[:23] + "…"
	}
	return "SHA-256 " + fp
}

// addClientRejected turns a TLS alert after we presented our certificate
// into the reason, using what the daemon said it trusts.
func addClientRejected(r *Report, t Target, hs *handshakeResult, err error) {
	alert, ok := rejection(err, hs.presented)
	if !ok {
		addFailedAfterHandshake(r, hs, err)
		return
	}
	trusts := trustedNames(hs.trusted)
	c := t.Cert
	fix := "docker tls context create " + t.Name + " --host " + t.Host + " --issue --force --ca CA-THE-DAEMON-TRUSTS"
	switch {
	case c == nil:
		r.add("client-accepted", Fail, fix, "the daemon rejected the connection (%s)", alert)
	case len(hs.trusted) > 0 && !trustsIssuer(hs.trusted, c):
		r.add("client-accepted", Fail, fix, "the daemon does not trust your client certificate: it is issued by %q, the daemon trusts %s (%s)",
			c.Issuer.CommonName, trusts, alert)
	case time.Now().After(c.NotAfter) || strings.Contains(alert, "expired"):
		r.add("client-accepted", Fail, fix, "the daemon rejected your client certificate because it expired on %s (%s)", day(c.NotAfter), alert)
	case len(c.ExtKeyUsage) > 0 && !strings.Contains(ekuList(c), "clientAuth"):
		r.add("client-accepted", Fail, fix, "the daemon rejected your certificate because it lacks clientAuth (%s)", alert)
	default:
		r.add("client-accepted", Fail, fix, "the daemon rejected your client certificate %q issued by %q (%s); it trusts %s",
			c.Subject.CommonName, c.Issuer.CommonName, alert, trusts)
	}
}

// rejection reads the daemon's refusal of our certificate from err: the
// TLS alert, or the reset that follows it (presented: we sent one). ok is
// false when err is not a refusal.
func rejection(err error, presented bool) (alert string, ok bool) {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "remote error: tls:"):
		return msg[strings.Index(msg, "remote error: tls:")+len("remote error: tls: "):], true
	case presented && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) ||
		strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe") || strings.Contains(msg, "EOF")):
		// The alert can lose the race with our first write; the reset
		// that follows it means the same.
		return "the daemon closed the connection", true
	}
	return "", false
}

// addFailedAfterHandshake reports a first request that failed for another
// reason than a refusal of our certificate.
func addFailedAfterHandshake(r *Report, hs *handshakeResult, err error) {
	switch {
	case isTimeout(err):
		r.add("client-accepted", Fail, "", "the daemon did not answer /_ping within %s after the handshake", hs.timeout)
	case strings.Contains(err.Error(), "failed to verify certificate"):
		r.add("client-accepted", Skip, "", "not known: the engine's certificate does not verify (see above), so nothing more was sent")
	default:
		r.add("client-accepted", Fail, "", "the connection failed after the handshake: %s", err)
	}
}

func trustsIssuer(trusted [][]byte, c *x509.Certificate) bool {
	for _, der := range trusted {
		if bytes.Equal(der, c.RawIssuer) {
			return true
		}
	}
	return false
}

func trustedNames(trusted [][]byte) string {
	if len(trusted) == 0 {
		return "an unnamed CA"
	}
	var names []string
	for _, der := range trusted {
		var rdn pkix.RDNSequence
		if _, err := asn1.Unmarshal(der, &rdn); err != nil {
			continue
		}
		var n pkix.Name
		n.FillFromRDNSequence(&rdn)
		if n.CommonName != "" {
			names = append(names, fmt.Sprintf("%q", n.CommonName))
		} else {
			names = append(names, fmt.Sprintf("%q", n.String()))
		}
	}
	return strings.Join(names, ", ")
}

// checkAPI talks to the Docker API through github.com/moby/moby/client,
// reusing the connection whose handshake was just examined, so a verify
// costs no extra handshake. /_ping tells whether the daemon accepted our
// client certificate: with TLS 1.3 a rejection arrives only now, as an
// alert on the first read. /version reports the engine. Meanwhile a second
// connection without a certificate tests whether the daemon requires one.
func checkAPI(ctx context.Context, r *Report, t Target, hs *handshakeResult, hostname, port string, o Options) {
	timeout := o.Timeout
	if hs.requested && !hs.presented {
		hs.conn.Close()
		r.add("client-accepted", Fail, "", "the daemon requires a client certificate and there is none to present (see client-cert and client-key above)")
		return
	}
	anon := make(chan bool, 1)
	if hs.requested {
		go func() { anon <- anonymousAccepted(ctx, hostname, port, timeout) }()
	}

	// The examined connection carries the first request; errErr keeps what
	// went wrong on it, because the API client falls back to a new (fully
	// verified) connection whose error would hide the daemon's verdict.
	watched := &errConn{Conn: hs.conn}
	var first net.Conn = watched
	verified := pki.ClientTLSBundle(t.cas(), hostname, pki.TLSCertificate(t.Cert, t.Key))
	tr := &http.Transport{
		TLSClientConfig: verified, // also tells the API client to use https
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if c := first; c != nil {
				first = nil
				return c, nil
			}
			d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: verified}
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	_ = hs.conn.SetDeadline(time.Time{}) // the HTTP client's timeout applies from here
	var server string                    // the Server header of the first answer
	cli, err := client.New(client.WithHost("tcp://"+net.JoinHostPort(hostname, port)), client.WithHTTPClient(&http.Client{Transport: tr, Timeout: timeout}),
		client.WithHTTPResponseHook(func(resp *http.Response) {
			if server == "" {
				server = resp.Header.Get("Server")
			}
		}))
	if err != nil {
		r.add("api", Fail, "", "Docker API client: %s", err)
		return
	}
	defer cli.Close()
	actx, cancel := context.WithTimeout(ctx, 2*timeout)
	defer cancel()
	ping, err := cli.Ping(actx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		if first != nil {
			first.Close()
		}
		if ferr := watched.firstErr(); ferr != nil {
			err = ferr
		}
		addClientRejected(r, t, hs, err)
		return
	}
	if hs.requested {
		r.add("client-accepted", OK, "", "the daemon accepted the client certificate")
	}
	// The engine's version and OS come with every answer (dockerd's
	// "Server: Docker/VERSION (OS)" header), so /_ping told them; /version
	// (Options.Arch) is asked only for the architecture, or of an engine
	// that did not say.
	var v client.ServerVersionResult
	var verr error
	if version, os, ok := parseServerHeader(server); ok && !o.Arch {
		v.Version, v.APIVersion, v.Os = version, ping.APIVersion, os
	} else if r.Count(Fail) == 0 {
		v, verr = cli.ServerVersion(actx, client.ServerVersionOptions{})
	}
	addClientAuth(r, hs.requested, hs.requested && <-anon)
	addAPI(r, v, verr, ping.APIVersion)
}

// addClientAuth reports whether the daemon requires a client certificate:
// it asked for one (requested), and refused a client without one.
func addClientAuth(r *Report, requested, anonymousOK bool) {
	switch {
	case !requested:
		r.add("client-auth", Warn, clientAuthFix,
			"the daemon did not ask for a client certificate: it runs --tls without --tlsverify, so anyone who reaches the port can use the API")
	case anonymousOK:
		r.add("client-auth", Warn, clientAuthFix,
			"the daemon asks for a client certificate but also serves clients without one (--tls without --tlsverify): anyone who reaches the port can use the API")
	default:
		r.add("client-auth", OK, "", "the daemon refuses clients without a certificate (--tlsverify)")
	}
}

// addAPI reports the engine, as /version (or the headers) told it.
func addAPI(r *Report, v client.ServerVersionResult, verr error, pingAPI string) {
	switch {
	case r.Count(Fail) > 0:
		r.add("api", Skip, "", "Docker API not reported: fix the failures above first (the docker CLI would refuse this connection)")
	case verr != nil:
		r.add("api", Fail, "", "the Docker API did not answer /version: %s", verr)
	default:
		r.Engine = &Engine{Version: v.Version, APIVersion: v.APIVersion, OS: v.Os, Arch: v.Arch}
		if r.Engine.APIVersion == "" {
			r.Engine.APIVersion = pingAPI
		}
		platform := v.Os
		if v.Arch != "" {
			platform += "/" + v.Arch
		}
		r.add("api", OK, "", "Docker Engine %s, API %s, %s", v.Version, v.APIVersion, platform)
	}
}

// parseServerHeader reads dockerd's "Docker/20.10.24+dfsg1 (linux)".
func parseServerHeader(h string) (version, os string, ok bool) {
	rest, ok := strings.CutPrefix(h, "Docker/")
	if !ok {
		return "", "", false
	}
	version, os, ok = strings.Cut(rest, " (")
	os, closed := strings.CutSuffix(os, ")")
	if !ok || !closed || version == "" || os == "" || strings.ContainsAny(version+os, " ()") {
		return "", "", false
	}
	return version, os, true
}

const clientAuthFix = "restart dockerd with --tlsverify --tlscacert=CA --tlscert=… --tlskey=…"
