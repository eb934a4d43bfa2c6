package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// echoEngine is a mutual-TLS server that echoes what it reads until EOF,
// then writes "bye" and closes: enough to prove the relay's half-close.
func echoEngine(t testing.TB, ca *pki.CA) string {
	return tlsEngine(t, ca, func(conn net.Conn) {
		data, _ := io.ReadAll(conn)
		_, _ = conn.Write(data)
		_, _ = conn.Write([]byte("bye"))
	})
}

// tlsEngine serves mutual TLS on a loopback port, each connection handled
// by handle, and returns its tcp:// address.
func tlsEngine(t testing.TB, ca *pki.CA, handle func(net.Conn)) string {
	t.Helper()
	sans, _, _ := pki.ParseSANs([]string{"127.0.0.1"})
	k, _ := pki.GenerateKey(pki.ECDSAP256)
	c, err := ca.Issue(pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans, PublicKey: k.Public()})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{c.Raw}, PrivateKey: k}},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				handle(conn)
			}()
		}
	}()
	return "tcp://" + l.Addr().String()
}

// fixture is a CA and a client key and certificate it issued.
type fixture struct {
	ca   *pki.CA
	key  crypto.Signer
	cert *x509.Certificate
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	ca, err := pki.NewCA(key, pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ck, _ := pki.GenerateKey(pki.ECDSAP256)
	cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "a", PublicKey: ck.Public()})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{ca: ca, key: ck, cert: cert}
}

// startAgent runs an agent in dir serving one context, e1, relaying to
// remote with f's certificate; loadKey counts key loads when not nil. It
// returns once the agent answers; the channel gets Run's result.
func startAgent(t testing.TB, ctx context.Context, dir, remote string, f fixture, loads *atomic.Int32) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Dir: dir,
			Endpoints: func() ([]Endpoint, error) {
				return []Endpoint{{Name: "e1", Remote: remote, CAs: []*x509.Certificate{f.ca.Cert}, Cert: f.cert, KeyStore: "mem", KeyID: "k"}}, nil
			},
			LoadKey: func(store, id string) (crypto.Signer, error) {
				if loads != nil {
					loads.Add(1)
				}
				return f.key, nil
			},
			Log: log.New(io.Discard, "", 0),
		})
	}()
	for deadline := time.Now().Add(5 * time.Second); !Running(dir); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("agent did not start")
		}
	}
	// An agent that answers serves its contexts already (a docker command
	// right after `docker tls agent` must not find the socket missing).
	if _, err := os.Stat(SocketPath(dir, "e1")); err != nil {
		t.Fatalf("the agent answers but does not serve its context yet: %v", err)
	}
	return done
}

// TestOneAgentPerDirectory: agents started together in one directory: one
// runs, the others say one is running, and none removes its sockets.
func TestOneAgentPerDirectory(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan error, 4)
	for range 4 {
		go func() {
			results <- Run(ctx, Config{Dir: dir,
				Endpoints: func() ([]Endpoint, error) {
					return []Endpoint{{Name: "e1", Remote: "tcp://127.0.0.1:1", CAs: []*x509.Certificate{f.ca.Cert}, Cert: f.cert, KeyStore: "mem", KeyID: "k"}}, nil
				},
				LoadKey: func(string, string) (crypto.Signer, error) { return f.key, nil },
				Log:     log.New(io.Discard, "", 0),
			})
		}()
	}
	for range 3 {
		select {
		case err := <-results:
			if !errors.Is(err, ErrRunning) {
				t.Fatalf("a second agent: %v, want ErrRunning", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the extra agents did not give up")
		}
	}
	for deadline := time.Now().Add(5 * time.Second); !Running(dir); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no agent runs")
		}
	}
	if _, err := os.Stat(SocketPath(dir, "e1")); err != nil {
		t.Fatalf("the running agent's socket is gone: %v", err)
	}
	cancel()
	if err := <-results; err != nil {
		t.Fatal(err)
	}
}

func TestRelayHalfCloseStatusLock(t *testing.T) {
	f := newFixture(t)
	remote := echoEngine(t, f.ca)
	dir, err := os.MkdirTemp("", "dtls-agent-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var loads atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := startAgent(t, ctx, dir, remote, f, &loads)
	if err := Run(context.Background(), Config{Dir: dir, Endpoints: func() ([]Endpoint, error) { return nil, nil }}); err != ErrRunning {
		t.Fatalf("second agent: %v", err)
	}
	for i := range 3 {
		c, err := net.Dial("unix", SocketPath(dir, "e1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		// Half-close: the engine sees EOF, and its answer still comes back.
		if err := c.(*net.UnixConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "hellobye" {
			t.Fatalf("round %d: %q %v", i, got, err)
		}
	}
	// A bulk upload crosses many TLS records per batched write.
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	c, err := net.Dial("unix", SocketPath(dir, "e1"))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = c.Write(big); _ = c.(*net.UnixConn).CloseWrite() }()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || !bytes.Equal(got, append(big, "bye"...)) {
		t.Fatalf("3 MiB round trip: %d bytes back, %v", len(got), err)
	}
	if loads.Load() != 1 {
		t.Fatalf("key loaded %d times, want once", loads.Load())
	}
	st, _, err := Call(dir, "status")
	if err != nil || len(st.Contexts) != 1 || !st.Contexts[0].KeyLoaded || st.Total != 4 {
		t.Fatalf("status %+v %v", st, err)
	}
	if _, n, err := Call(dir, "lock"); err != nil || n != 1 {
		t.Fatalf("lock: %d %v", n, err)
	}
	if st, _, _ := Call(dir, "status"); st.Contexts[0].KeyLoaded {
		t.Fatal("key still loaded after lock")
	}
	if fi, err := os.Stat(SocketPath(dir, "e1")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", fi, err)
	}
	if _, _, err := Call(dir, "stop"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("agent did not stop")
	}
	cancel()
	if left, _ := filepath.Glob(filepath.Join(dir, "*.sock")); len(left) != 0 {
		t.Fatalf("sockets left: %v", left)
	}
	if _, _, err := Call(dir, "status"); err != ErrNotRunning || !strings.Contains(err.Error(), "docker tls agent") {
		t.Fatalf("status of a stopped agent: %v", err)
	}
}

func TestRunDir(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	a, b := RunDir("/home/a/.docker"), RunDir("/home/b/.docker")
	if a == b || !strings.HasPrefix(a, "/run/user/1000/docker-tls-") {
		t.Fatalf("%s %s", a, b)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if got := RunDir("/home/a/.docker"); got != "/home/a/.docker/tls/run" {
		t.Fatal(got)
	}
}

func TestIdleLockDropsUnusedKeys(t *testing.T) {
	k, _ := pki.GenerateKey(pki.ECDSAP256)
	a := &Agent{cfg: Config{IdleLock: time.Minute, Log: log.New(io.Discard, "", 0)}, keys: map[string]*heldKey{
		"stale": {key: k, lastUsed: time.Now().Add(-2 * time.Minute)},
		"fresh": {key: k, lastUsed: time.Now()},
	}}
	a.idleLock()
	if _, ok := a.keys["stale"]; ok {
		t.Error("a key unused for longer than --idle-lock stayed in memory")
	}
	if _, ok := a.keys["fresh"]; !ok {
		t.Error("a recently used key was dropped")
	}
	a.cfg.IdleLock = 0
	a.keys["stale"] = &heldKey{key: k, lastUsed: time.Now().Add(-time.Hour)}
	a.idleLock()
	if _, ok := a.keys["stale"]; !ok {
		t.Error("without --idle-lock no key may be dropped")
	}
}

func TestRescanOnlyWhenTheStoreChanged(t *testing.T) {
	stamp := "1"
	var lists int
	t0 := time.Now()
	clock := t0
	a := &Agent{cfg: Config{
		Dir:        t.TempDir(),
		Endpoints:  func() ([]Endpoint, error) { lists++; return nil, nil },
		Stamp:      func() string { return stamp },
		FullRescan: time.Minute,
		Log:        log.New(io.Discard, "", 0),
	}, eps: map[string]*served{}, keys: map[string]*heldKey{}, now: func() time.Time { return clock }}
	ctx := context.Background()
	if err := a.reload(ctx); err != nil { // what Run does at start
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		stamp string
		at    time.Duration
		lists int
	}{
		{"unchanged store, 5 s later: no listing", "1", 5 * time.Second, 1},
		{"unchanged store, 55 s later: still none", "1", 55 * time.Second, 1},
		{"a context was created or removed", "2", 56 * time.Second, 2},
		{"unchanged again", "2", 61 * time.Second, 2},
		{"a minute after the last listing: a full rescan anyway", "2", 56*time.Second + time.Minute, 3},
	}
	for _, s := range steps {
		stamp, clock = s.stamp, t0.Add(s.at)
		a.rescan(ctx)
		if lists != s.lists {
			t.Fatalf("%s: %d listings, want %d", s.name, lists, s.lists)
		}
	}
}

func TestFirstConnectionsShareOneKeyLoad(t *testing.T) {
	f := newFixture(t)
	var loads atomic.Int32
	release := make(chan struct{})
	a := &Agent{cfg: Config{
		LoadKey: func(store, id string) (crypto.Signer, error) {
			loads.Add(1)
			<-release // a keyring waiting for its unlock prompt
			return f.key, nil
		},
		Log: log.New(io.Discard, "", 0),
	}, keys: map[string]*heldKey{}, loading: map[string]*keyLoad{}}
	ep := Endpoint{Name: "e1", KeyStore: "mem", KeyID: "k"}
	const n = 20
	got := make(chan crypto.Signer, n)
	for range n {
		go func() {
			k, err := a.key(ep)
			if err != nil {
				t.Error(err)
			}
			got <- k
		}()
	}
	// Let every caller reach the wait, then answer the one request.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		a.mu.Lock()
		inFlight := len(a.loading)
		a.mu.Unlock()
		if inFlight == 1 || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	for range n {
		if k := <-got; k != f.key {
			t.Fatal("a caller got another key")
		}
	}
	if loads.Load() != 1 {
		t.Fatalf("%d key store requests for %d concurrent first connections, want 1", loads.Load(), n)
	}
	if _, ok := a.keys["k"]; !ok {
		t.Fatal("the loaded key is not held")
	}

	// A lock that arrives while a load is in flight keeps the key out of memory.
	a.Lock()
	release = make(chan struct{})
	done := make(chan struct{})
	go func() { _, _ = a.key(ep); close(done) }()
	for deadline := time.Now().Add(5 * time.Second); loads.Load() != 2 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
	}
	a.Lock()
	close(release)
	<-done
	if _, ok := a.keys["k"]; ok {
		t.Fatal("a key loaded across agent lock stayed in memory")
	}
}

// flakyListener fails its first Accept calls the way a process out of file
// descriptors does, then behaves.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if f.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return f.Listener.Accept()
}

func TestServeSurvivesAcceptErrors(t *testing.T) {
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: l}
	fl.failures.Store(3)
	var logged bytes.Buffer
	var mu sync.Mutex
	logger := log.New(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logged.Write(p) }), "", 0)
	done := make(chan struct{})
	go func() {
		serve(fl, logger, func(c net.Conn) { _, _ = c.Write([]byte("hi")); c.Close() })
		close(done)
	}()
	c, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(c); err != nil || string(got) != "hi" {
		t.Fatalf("after three failed accepts: %q %v", got, err)
	}
	c.Close()
	mu.Lock()
	if n := strings.Count(logged.String(), "too many open files"); n != 3 {
		t.Errorf("logged %d accept errors, want 3:\n%s", n, logged.String())
	}
	mu.Unlock()
	l.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return when its listener closed")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// A client that half-closes keeps its connection (the engine may still
// answer); a client that goes away completely takes the engine's side with
// it even when the engine never writes again (an idle attach).
func TestRelayClosesWhenTheClientIsGone(t *testing.T) {
	if !canSeeHangup {
		t.Skip("this OS cannot tell a closed Unix socket peer from a half-closed one")
	}
	f := newFixture(t)
	engineSawClose := make(chan struct{})
	remote := tlsEngine(t, f.ca, func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c) // the client's half-close arrives as close_notify
		// Silent from now on. Below TLS, only the agent closing the TCP
		// connection ends this read.
		raw := c.(*tls.Conn).NetConn()
		_ = raw.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := raw.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			close(engineSawClose)
		}
	})
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := startAgent(t, ctx, dir, remote, f, nil)
	defer func() { cancel(); <-done }()
	open := func() int64 {
		st, _, err := Call(dir, "status")
		if err != nil {
			t.Fatal(err)
		}
		return st.Connections
	}

	c, err := net.Dial("unix", SocketPath(dir, "e1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("attach")); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.UnixConn).CloseWrite()
	time.Sleep(3 * hangupCheck)
	if n := open(); n != 1 {
		t.Fatalf("a half-closed client's connection was dropped: %d open", n)
	}
	c.Close()
	select {
	case <-engineSawClose:
	case <-time.After(10 * hangupCheck):
		t.Fatal("the engine's side stayed open after the client went away")
	}
	for deadline := time.Now().Add(5 * time.Second); open() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the relay did not end after the client went away")
		}
	}
}

// An engine that resets the connection ends the relay at once: the client
// sees its connection close although it never closed its own side.
func TestRelayClosesBothSidesOnError(t *testing.T) {
	f := newFixture(t)
	remote := tlsEngine(t, f.ca, func(c net.Conn) {
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			return
		}
		_, _ = tc.Read(make([]byte, 5)) // the client's first bytes
		raw := tc.NetConn().(*net.TCPConn)
		_ = raw.SetLinger(0) // close with a reset, no close_notify
		raw.Close()
	})
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := startAgent(t, ctx, dir, remote, f, nil)
	defer func() { cancel(); <-done }()

	c, err := net.Dial("unix", SocketPath(dir, "e1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	// The client keeps its sending side open and waits.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the client's connection stayed open after the engine reset its side")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, _, err := Call(dir, "status")
		if err != nil {
			t.Fatal(err)
		}
		if st.Connections == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the relay is still open after the engine reset")
		}
	}
}
