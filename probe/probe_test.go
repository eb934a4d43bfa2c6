package probe

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/internal/loopback"
	"github.com/docker-tls/docker-tls/pki"
)

// pkiSet is a CA with a server and a client identity, minted for a test.
type pkiSet struct {
	ca         *pki.CA
	serverCert *x509.Certificate
	serverKey  crypto.Signer
	clientCert *x509.Certificate
	clientKey  crypto.Signer
}

func newCA(t *testing.T, cn string, now time.Time) *pki.CA {
	t.Helper()
	k, _ := pki.GenerateKey(pki.ECDSAP256)
	ca, err := pki.NewCA(k, pki.CAOptions{CommonName: cn, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *pki.CA, req pki.IssueRequest) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	k, _ := pki.GenerateKey(pki.ECDSAP256)
	req.PublicKey = k.Public()
	c, err := ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func newSet(t *testing.T) *pkiSet {
	s := &pkiSet{ca: newCA(t, "test CA", time.Now())}
	sans, _, _ := pki.ParseSANs([]string{"localhost", "127.0.0.1"})
	s.serverCert, s.serverKey = issue(t, s.ca, pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans})
	s.clientCert, s.clientKey = issue(t, s.ca, pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "alice"})
	return s
}

// fakeEngine is an in-process TLS server answering /_ping and /version like
// dockerd. The end-to-end tests run the same cases against a real dockerd.
func fakeEngine(t *testing.T, cert *x509.Certificate, key crypto.Signer, clientCA *x509.Certificate, auth tls.ClientAuthType) string {
	t.Helper()
	pool := x509.NewCertPool()
	if clientCA != nil {
		pool.AddCert(clientCA)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}},
		ClientCAs:    pool, ClientAuth: auth, MinVersion: tls.VersionTLS12,
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		fmt.Fprint(w, "OK")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"Version":"99.0.0","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}`)
	})
	srv := &http.Server{Handler: mux, ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "tcp://" + l.Addr().String()
}

func find(r *Report, id string) *Check {
	for i := range r.Checks {
		if r.Checks[i].ID == id {
			return &r.Checks[i]
		}
	}
	return nil
}

func TestRun(t *testing.T) {
	s := newSet(t)
	other := newCA(t, "other CA", time.Now())
	past := time.Now().Add(-3 * 365 * 24 * time.Hour)
	oldCA := newCA(t, "test CA", past)
	// oldCA signs an expired server certificate; the client trusts oldCA.
	sans, _, _ := pki.ParseSANs([]string{"127.0.0.1"})
	expiredServer, expiredServerKey := issue(t, oldCA, pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans, Now: past, Lifetime: 24 * time.Hour})
	onlyLocal, _, _ := pki.ParseSANs([]string{"localhost"})
	wrongNameCert, wrongNameKey := issue(t, s.ca, pki.IssueRequest{Profile: pki.ServerProfile, SANs: onlyLocal})
	otherServer, otherServerKey := issue(t, other, pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans})
	otherClient, otherClientKey := issue(t, other, pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "mallory"})
	expiredClient, expiredClientKey := issue(t, oldCA, pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "old", Now: past, Lifetime: 24 * time.Hour})
	serverAsClient, serverAsClientKey := issue(t, s.ca, pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans})
	strangerKey, _ := pki.GenerateKey(pki.ECDSAP256)

	good := fakeEngine(t, s.serverCert, s.serverKey, s.ca.Cert, tls.RequireAndVerifyClientCert)
	tests := []struct {
		name     string
		target   Target
		failID   string // "" means nothing fails
		warnID   string
		contains string
	}{
		{"good", Target{Host: good, CA: s.ca.Cert, Cert: s.clientCert, Key: s.clientKey}, "", "", ""},
		{"SAN mismatch", Target{Host: fakeEngine(t, wrongNameCert, wrongNameKey, s.ca.Cert, tls.RequireAndVerifyClientCert), CA: s.ca.Cert, Cert: s.clientCert, Key: s.clientKey},
			"server-name", "", "valid for DNS:localhost, not for 127.0.0.1"},
		{"expired server", Target{Host: fakeEngine(t, expiredServer, expiredServerKey, s.ca.Cert, tls.RequireAndVerifyClientCert), CA: oldCA.Cert, Cert: s.clientCert, Key: s.clientKey},
			"server-expiry", "", "expired on"},
		{"server from another CA", Target{Host: fakeEngine(t, otherServer, otherServerKey, s.ca.Cert, tls.RequireAndVerifyClientCert), CA: s.ca.Cert, Cert: s.clientCert, Key: s.clientKey},
			"server-chain", "", `issued by "other CA", not by the context's CA "test CA"`},
		// A ca.pem bundle (a CA rotation's old+new): the server's certificate
		// from the second CA is trusted, as the docker CLI trusts it.
		{"bundle: server from the second CA", Target{Host: fakeEngine(t, otherServer, otherServerKey, s.ca.Cert, tls.RequireAndVerifyClientCert), CA: s.ca.Cert, MoreCAs: []*x509.Certificate{other.Cert}, Cert: s.clientCert, Key: s.clientKey},
			"", "", `chains to "other CA"`},
		{"bundle: server from neither", Target{Host: fakeEngine(t, expiredServer, expiredServerKey, s.ca.Cert, tls.RequireAndVerifyClientCert), CA: s.ca.Cert, MoreCAs: []*x509.Certificate{other.Cert}, Cert: s.clientCert, Key: s.clientKey},
			"server-chain", "", `not by any of the 2 CAs in the context's ca.pem ("test CA", …)`},
		{"client from another CA", Target{Name: "x", Host: good, CA: s.ca.Cert, Cert: otherClient, Key: otherClientKey},
			"client-accepted", "client-cert", `the daemon does not trust your client certificate: it is issued by "other CA", the daemon trusts "test CA"`},
		{"expired client", Target{Host: good, CA: s.ca.Cert, Cert: expiredClient, Key: expiredClientKey}, "client-cert", "", "expired on"},
		{"serverAuth-only client", Target{Host: good, CA: s.ca.Cert, Cert: serverAsClient, Key: serverAsClientKey}, "client-cert", "", "lacks extended key usage clientAuth"},
		{"key mismatch", Target{Host: good, CA: s.ca.Cert, Cert: s.clientCert, Key: strangerKey}, "client-key", "", "does not match"},
		{"--tls without --tlsverify", Target{Host: fakeEngine(t, s.serverCert, s.serverKey, nil, tls.NoClientCert), CA: s.ca.Cert, Cert: s.clientCert, Key: s.clientKey},
			"", "client-auth", "--tls without --tlsverify"},
		{"asks for a client cert but does not require one", Target{Host: fakeEngine(t, s.serverCert, s.serverKey, s.ca.Cert, tls.VerifyClientCertIfGiven), CA: s.ca.Cert, Cert: s.clientCert, Key: s.clientKey},
			"", "client-auth", "also serves clients without one"},
		{"plain HTTP", Target{Host: loopback.Serve(t, func(c net.Conn) {
			buf := make([]byte, 512)
			_, _ = c.Read(buf)
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"))
		}), CA: s.ca.Cert, Cert: s.clientCert, Key: s.clientKey}, "tls", "", "exposed without TLS"},
		{"banner", Target{Host: loopback.Serve(t, func(c net.Conn) { _, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2p1 Debian\r\n")) }), CA: s.ca.Cert, Cert: s.clientCert, Key: s.clientKey},
			"tls", "", `sent "SSH-2.0-OpenSSH_9.2p1 Debian"`},
		{"silent", Target{Host: loopback.Serve(t, func(c net.Conn) {}), CA: s.ca.Cert, Cert: s.clientCert, Key: s.clientKey}, "tls", "", "no TLS answer within"},
		{"refused", Target{Host: refusedHost(t), CA: s.ca.Cert, Cert: s.clientCert, Key: s.clientKey}, "tcp", "", "refused"},
		{"locked", Target{Host: good, CA: s.ca.Cert, Cert: s.clientCert, Key: s.clientKey, Locked: true}, "", "client-key", "locked"},
		{"no key", Target{Host: good, CA: s.ca.Cert, Cert: s.clientCert, KeyProblem: "the key is gone"}, "client-key", "", "the key is gone"},
		{"not tcp", Target{Host: "unix:///var/run/docker.sock", CA: s.ca.Cert, Cert: s.clientCert, Key: s.clientKey}, "endpoint", "", "not tcp://HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			// 2 s: the silent case waits it out; the others must finish well inside
			// it even on a CI machine busy with other test packages.
			r := Run(context.Background(), tt.target, Options{Timeout: 2 * time.Second})
			if time.Since(start) > 5*time.Second {
				t.Fatalf("took %s", time.Since(start))
			}
			dump := func() string {
				var b strings.Builder
				for _, c := range r.Checks {
					fmt.Fprintf(&b, "%s %s %s | %s\n", c.Status, c.ID, c.Message, c.Fix)
				}
				return b.String()
			}
			if tt.failID == "" {
				if r.Count(Fail) != 0 {
					t.Fatalf("unexpected failure:\n%s", dump())
				}
			} else if c := r.First(Fail); c == nil || c.ID != tt.failID || (tt.contains != "" && tt.warnID == "" && !strings.Contains(c.Message, tt.contains)) {
				t.Fatalf("first failure should be %s mentioning %q:\n%s", tt.failID, tt.contains, dump())
			}
			if tt.warnID != "" {
				if c := find(r, tt.warnID); c == nil || c.Status != Warn {
					t.Fatalf("%s should warn:\n%s", tt.warnID, dump())
				}
			}
			if tt.contains != "" && !strings.Contains(dump(), tt.contains) {
				t.Fatalf("no check mentions %q:\n%s", tt.contains, dump())
			}
			if tt.failID == "" && tt.warnID == "" && (r.Engine == nil || r.Engine.Version != "99.0.0") {
				t.Fatalf("engine = %+v\n%s", r.Engine, dump())
			}
			if r.Status != r.Worst() {
				t.Fatalf("status %s, worst %s", r.Status, r.Worst())
			}
			for _, c := range r.Checks {
				if (c.Status == Fail) && c.Message == "" {
					t.Fatalf("failure without a message: %+v", c)
				}
			}
		})
	}
}

func refusedHost(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "tcp://" + addr
}

func TestOffline(t *testing.T) {
	s := newSet(t)
	r := Run(context.Background(), Target{Host: "tcp://192.0.2.1:2376", CA: s.ca.Cert, Cert: s.clientCert, Key: s.clientKey}, Options{Offline: true})
	if r.Count(Fail) != 0 || find(r, "tcp") != nil || find(r, "network").Status != Skip {
		t.Fatalf("%+v", r.Checks)
	}
}

func TestClientCertRenewalWarning(t *testing.T) {
	s := newSet(t)
	c, k := issue(t, s.ca, pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "soon", Lifetime: 10 * 24 * time.Hour})
	r := Run(context.Background(), Target{Host: "tcp://192.0.2.1:2376", CA: s.ca.Cert, Cert: c, Key: k}, Options{Offline: true})
	if cc := find(r, "client-cert"); cc.Status != Warn || !strings.Contains(cc.Message, "expires in") {
		t.Fatalf("%+v", cc)
	}
	// Past two thirds of its life also warns, even with more than 14 days left.
	c, k = issue(t, s.ca, pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "late", Lifetime: 90 * 24 * time.Hour})
	r = Run(context.Background(), Target{Host: "tcp://192.0.2.1:2376", CA: s.ca.Cert, Cert: c, Key: k}, Options{Offline: true, Now: time.Now().Add(65 * 24 * time.Hour)})
	if cc := find(r, "client-cert"); cc.Status != Warn {
		t.Fatalf("%+v", cc)
	}
}

func TestRunAllIsConcurrentAndBounded(t *testing.T) {
	s := newSet(t)
	silent := loopback.Serve(t, func(c net.Conn) {})
	good := fakeEngine(t, s.serverCert, s.serverKey, s.ca.Cert, tls.RequireAndVerifyClientCert)
	var targets []Target
	for i := range 40 {
		h := good
		if i%4 == 0 {
			h = silent
		}
		targets = append(targets, Target{Name: fmt.Sprint(i), Host: h, CA: s.ca.Cert, Cert: s.clientCert, Key: s.clientKey})
	}
	// Each silent endpoint costs the whole timeout: one after another the
	// ten would take 20 s, together about 2 s. The timeout is generous so
	// that the 30 good handshakes also finish on a loaded CI machine (at
	// 500 ms one of them once did not, with other test packages running).
	const timeout = 2 * time.Second
	start := time.Now()
	reports := RunAll(context.Background(), targets, Options{Timeout: timeout}, 40)
	took := time.Since(start)
	if took > 4*timeout {
		t.Fatalf("40 checks with 10 silent took %s: not concurrent", took)
	}
	for i, r := range reports {
		if r.Name != fmt.Sprint(i) {
			t.Fatalf("report %d is for %s", i, r.Name)
		}
		if want := i%4 != 0; (r.Count(Fail) == 0) != want {
			t.Fatalf("report %d: %+v", i, r.Checks)
		}
	}
}

func TestParseServerHeader(t *testing.T) {
	for _, tt := range []struct {
		in, version, os string
		ok              bool
	}{
		{"Docker/20.10.24+dfsg1 (linux)", "20.10.24+dfsg1", "linux", true},
		{"Docker/28.2.2 (windows)", "28.2.2", "windows", true},
		{"Docker/ (linux)", "", "", false},
		{"Docker/28.2.2", "", "", false},
		{"Docker/28.2.2 (linux", "", "", false},
		{"nginx/1.25 (debian)", "", "", false},
		{"", "", "", false},
	} {
		v, os, ok := parseServerHeader(tt.in)
		if v != tt.version || os != tt.os || ok != tt.ok {
			t.Errorf("parseServerHeader(%q) = %q, %q, %v", tt.in, v, os, ok)
		}
	}
}

// TestVersionFromServerHeader: an engine that says its version in every
// answer, as dockerd does, is not asked /version (which dockerd answers
// slowly), unless the architecture is wanted; one that does not say is.
func TestVersionFromServerHeader(t *testing.T) {
	s := newSet(t)
	for _, tt := range []struct {
		server       string
		arch         bool
		wantVersions int
		want         string
	}{
		{"Docker/20.10.24+dfsg1 (linux)", false, 0, "Docker Engine 20.10.24+dfsg1, API 1.41, linux"},
		{"Docker/20.10.24+dfsg1 (linux)", true, 1, "Docker Engine 99.0.0, API 1.41, linux/amd64"},
		{"", false, 1, "Docker Engine 99.0.0, API 1.41, linux/amd64"},
	} {
		var versions atomic.Int32
		pool := x509.NewCertPool()
		pool.AddCert(s.ca.Cert)
		l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{s.serverCert.Raw}, PrivateKey: s.serverKey}},
			ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tt.server != "" {
				w.Header().Set("Server", tt.server)
			}
			w.Header().Set("Api-Version", "1.41")
			if r.URL.Path == "/_ping" {
				fmt.Fprint(w, "OK")
				return
			}
			versions.Add(1)
			fmt.Fprint(w, `{"Version":"99.0.0","ApiVersion":"1.41","Os":"linux","Arch":"amd64"}`)
		})}
		go srv.Serve(l)
		r := Run(context.Background(), Target{Host: "tcp://" + l.Addr().String(), CA: s.ca.Cert, Cert: s.clientCert, Key: s.clientKey}, Options{Timeout: 5 * time.Second, Arch: tt.arch})
		srv.Close()
		api := find(r, "api")
		if api == nil || api.Status != OK || api.Message != tt.want || int(versions.Load()) != tt.wantVersions {
			t.Errorf("Server %q: api %+v, /version asked %d times (want %d)", tt.server, api, versions.Load(), tt.wantVersions)
		}
	}
}
