// Package agent owns agent mode: a small local process that holds client
// keys from the OS keyring in memory only and relays each connection from a
// private Unix socket to the engine over mutual TLS, so that a Docker context
// can point at the socket and no key file exists on disk. It is a byte relay,
// not an HTTP proxy: hijacked and streamed connections (attach, exec, logs -f,
// events, build, cp) pass through unchanged.
package agent

import (
	"bufio"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
)

// Endpoint is one agent-mode context: its socket and where it relays to.
type Endpoint struct {
	Name   string
	Remote string // tcp://HOST:PORT
	// CAs are the CAs the context trusts: one, or two while its CA is
	// being rotated (the old and the new one).
	CAs  []*x509.Certificate
	Cert *x509.Certificate
	// KeyStore and KeyID name the key; the agent loads it on first use.
	KeyStore string
	KeyID    string
}

// Config describes an agent.
type Config struct {
	// Dir is the private runtime directory (0700) holding the sockets.
	Dir string
	// Endpoints lists the agent-mode contexts; called at start and on reload.
	Endpoints func() ([]Endpoint, error)
	// Stamp, if set, returns a token that changes when contexts are created
	// or removed. The periodic rescan is skipped while it stays the same
	// (listing 1000 contexts every tick cost 2% of a core on an idle
	// laptop), except for a full rescan every FullRescan.
	Stamp func() string
	// FullRescan bounds how long an unchanged stamp may skip rescans
	// (default one minute).
	FullRescan time.Duration
	// LoadKey fetches a key from a key store.
	LoadKey func(store, id string) (crypto.Signer, error)
	// IdleLock drops keys unused for this long (0: never).
	IdleLock time.Duration
	// DialTimeout bounds connecting to an engine.
	DialTimeout time.Duration
	Log         *log.Logger
	// Renewals, if set, lists the contexts whose certificates the agent
	// renews itself, and when each is due; read at start, on every
	// rescan that finds the store changed, and after each renewal.
	Renewals func() ([]Due, error)
	// Renew renews one context's certificate (in the context store) and
	// returns its new expiry; the agent then serves the new certificate.
	// A failure is logged, shown by status, and retried with backoff.
	Renew func(ctx context.Context, name string) (time.Time, error)
	// RotationCheck, every CheckEvery (default 5 minutes), names the
	// contexts whose CA service is rotating its CA and which should renew
	// now rather than when due, to follow it before the old CA retires.
	RotationCheck func(ctx context.Context) []string
	CheckEvery    time.Duration
}

// RunDir is where the agent of a DOCKER_CONFIG keeps its sockets:
// $XDG_RUNTIME_DIR/docker-tls-<hash of the config dir>, or, without
// XDG_RUNTIME_DIR, $DOCKER_CONFIG/tls/run. The hash keeps agents of
// different configs apart and the path short (sockets are limited to ~100
// bytes).
func RunDir(configDir string) string {
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		abs, err := filepath.Abs(configDir)
		if err != nil {
			abs = configDir
		}
		sum := sha256.Sum256([]byte(abs))
		return filepath.Join(x, "docker-tls-"+hex.EncodeToString(sum[:4]))
	}
	return filepath.Join(configDir, "tls", "run")
}

// SocketPath is the socket of one context.
func SocketPath(dir, name string) string { return filepath.Join(dir, name+".sock") }

// ControlPath is the agent's own socket (status, lock, stop, reload).
func ControlPath(dir string) string { return filepath.Join(dir, "agent.sock") }

// Agent is a running agent.
type Agent struct {
	cfg     Config
	mu      sync.Mutex
	eps     map[string]*served
	keys    map[string]*heldKey
	loading map[string]*keyLoad // key loads in flight, by key id
	lockGen uint64              // counts Lock calls
	started time.Time
	// stamp and scanned are the store's Stamp at the last rescan, and when.
	stamp   string
	scanned time.Time
	now     func() time.Time // time.Now; tests move it
	conns   atomic.Int64
	total   atomic.Int64
	stop    context.CancelFunc
	// renewals are the certificates the agent keeps fresh, by context.
	renewals map[string]*renewal
}

type served struct {
	ep Endpoint
	l  net.Listener
}

type heldKey struct {
	key      crypto.Signer
	lastUsed time.Time
}

// ErrRunning is returned when another agent serves the directory.
var ErrRunning = errors.New("an agent is already running for this DOCKER_CONFIG (docker tls agent status)")

// Run serves until ctx ends or a stop request arrives, then removes its
// sockets. A directory left by a killed agent is cleaned up first.
func Run(ctx context.Context, cfg Config) error {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = log.New(io.Discard, "", 0)
	}
	if cfg.FullRescan == 0 {
		cfg.FullRescan = time.Minute
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("agent directory: %w", err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return err
	}
	if c, err := net.DialTimeout("unix", ControlPath(cfg.Dir), time.Second); err == nil {
		c.Close()
		return ErrRunning
	}
	// One agent per directory, for its whole life: a lock the OS drops
	// when the process dies, so two agents starting at once cannot remove
	// each other's sockets.
	release, err := fsutil.Lock(filepath.Join(cfg.Dir, "agent.lock"), 0)
	if errors.Is(err, fsutil.ErrLockHeld) {
		return ErrRunning
	}
	if err != nil {
		return err
	}
	defer release()
	// Whatever is left is from an agent that died: remove its sockets.
	stale, _ := filepath.Glob(filepath.Join(cfg.Dir, "*.sock"))
	for _, s := range stale {
		_ = os.Remove(s)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := &Agent{cfg: cfg, eps: map[string]*served{}, keys: map[string]*heldKey{}, loading: map[string]*keyLoad{}, started: time.Now(), now: time.Now, stop: cancel,
		renewals: map[string]*renewal{}}
	// The contexts' sockets first, the control socket last: whoever sees
	// the agent answer (Running, `docker tls agent`) can use every
	// context at once.
	if err := a.reload(ctx); err != nil {
		a.closeEndpoints()
		return err
	}
	ctl, err := listenPrivate(ControlPath(cfg.Dir))
	if err != nil {
		a.closeEndpoints()
		return err
	}
	defer os.Remove(ControlPath(cfg.Dir))
	go a.serveControl(ctx, ctl)
	cfg.Log.Printf("agent started, pid %d, %d context(s), sockets in %s", os.Getpid(), len(a.eps), cfg.Dir)
	a.refreshDue()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	// Renewals are checked every second (an in-memory comparison), so
	// that a certificate of a few minutes is renewed on time.
	renewTick := time.NewTicker(time.Second)
	defer renewTick.Stop()
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = 5 * time.Minute
	}
	checkTick := time.NewTicker(cfg.CheckEvery)
	defer checkTick.Stop()
	var checking atomic.Bool
	for {
		select {
		case <-ctx.Done():
			ctl.Close()
			a.closeEndpoints()
			cfg.Log.Printf("agent stopped")
			return nil
		case <-tick.C:
			if a.rescan(ctx) {
				a.refreshDue()
			}
			a.idleLock()
		case <-renewTick.C:
			a.renewDue(ctx)
		case <-checkTick.C:
			if cfg.RotationCheck != nil && checking.CompareAndSwap(false, true) {
				go func() { defer checking.Store(false); a.renewNow(cfg.RotationCheck(ctx)) }()
			}
		}
	}
}

// closeEndpoints stops serving every context, removes their sockets and
// forgets the keys.
func (a *Agent) closeEndpoints() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, s := range a.eps {
		s.l.Close()
		_ = os.Remove(SocketPath(a.cfg.Dir, name))
	}
	a.keys = map[string]*heldKey{}
}

// listenPrivate listens on a Unix socket readable and writable by the
// owner only, whatever the umask.
func listenPrivate(path string) (net.Listener, error) {
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// rescan is the periodic reload: skipped while the store's stamp is
// unchanged and the last full rescan is recent.
// rescan reloads the contexts if the store changed, and says whether it did.
func (a *Agent) rescan(ctx context.Context) bool {
	if a.cfg.Stamp != nil {
		stamp := a.cfg.Stamp() // a stat: not under the lock connections take
		a.mu.Lock()
		unchanged := stamp == a.stamp && a.now().Sub(a.scanned) < a.cfg.FullRescan
		a.mu.Unlock()
		if unchanged {
			return false
		}
	}
	_ = a.reload(ctx)
	return true
}

// reload serves the current agent-mode contexts: new ones get a socket,
// removed ones lose theirs.
func (a *Agent) reload(ctx context.Context) error {
	// The stamp is taken before listing, so that a change made during the
	// listing moves it again and is picked up on the next tick.
	var stamp string
	if a.cfg.Stamp != nil {
		stamp = a.cfg.Stamp()
	}
	scanned := a.now()
	eps, err := a.cfg.Endpoints()
	if err != nil {
		return err
	}
	want := map[string]Endpoint{}
	for _, ep := range eps {
		want[ep.Name] = ep
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stamp, a.scanned = stamp, scanned
	for name, s := range a.eps {
		if _, ok := want[name]; !ok {
			s.l.Close()
			_ = os.Remove(SocketPath(a.cfg.Dir, name))
			delete(a.eps, name)
			delete(a.keys, s.ep.KeyID)
		}
	}
	for name, ep := range want {
		if s, ok := a.eps[name]; ok {
			if s.ep.KeyID != ep.KeyID {
				delete(a.keys, s.ep.KeyID) // renewed with --rekey
			}
			s.ep = ep
			continue
		}
		l, err := listenPrivate(SocketPath(a.cfg.Dir, name))
		if err != nil {
			a.cfg.Log.Printf("context %s: %v", name, err)
			continue
		}
		a.eps[name] = &served{ep: ep, l: l}
		go a.accept(ctx, name, l)
	}
	return nil
}

func (a *Agent) endpoint(name string) (Endpoint, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.eps[name]
	if !ok {
		return Endpoint{}, false
	}
	return s.ep, true
}

func (a *Agent) accept(ctx context.Context, name string, l net.Listener) {
	serve(l, a.cfg.Log, func(c net.Conn) { a.handle(ctx, name, c.(*net.UnixConn)) })
}

// serve accepts connections until l is closed. Any other accept error
// (EMFILE when the process is out of file descriptors) is logged and
// retried with a growing pause, as net/http does, rather than leaving the
// socket unserved for the rest of the agent's life.
func serve(l net.Listener, logger *log.Logger, handle func(net.Conn)) {
	var pause time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			logger.Printf("accept on %s: %v; retrying in %s", l.Addr(), err, pause)
			time.Sleep(pause)
			continue
		}
		pause = 0
		go handle(c)
	}
}

// key returns the context's key, loading it from the key store on first
// use. Connections that arrive while the key is being loaded wait for that
// one load: a burst of first connections (50 docker commands at once)
// makes one keyring request, not 50, and so at most one unlock prompt.
func (a *Agent) key(ep Endpoint) (crypto.Signer, error) {
	a.mu.Lock()
	if h, ok := a.keys[ep.KeyID]; ok {
		h.lastUsed = time.Now()
		a.mu.Unlock()
		return h.key, nil
	}
	if l, ok := a.loading[ep.KeyID]; ok {
		a.mu.Unlock()
		<-l.done
		return l.key, l.err
	}
	l := &keyLoad{done: make(chan struct{})}
	a.loading[ep.KeyID] = l
	gen := a.lockGen
	a.mu.Unlock()

	l.key, l.err = a.cfg.LoadKey(ep.KeyStore, ep.KeyID)
	a.mu.Lock()
	delete(a.loading, ep.KeyID)
	// A lock that came during the load wins: the connections that were
	// waiting get the key, memory does not keep it.
	if l.err == nil && gen == a.lockGen {
		a.keys[ep.KeyID] = &heldKey{key: l.key, lastUsed: time.Now()}
	}
	a.mu.Unlock()
	close(l.done)
	if l.err != nil {
		return nil, l.err
	}
	a.cfg.Log.Printf("context %s: key loaded from the key store into memory", ep.Name)
	return l.key, nil
}

// keyLoad is one key store request that other connections may wait on.
type keyLoad struct {
	done chan struct{}
	key  crypto.Signer
	err  error
}

// Lock drops every key from memory.
func (a *Agent) Lock() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.keys)
	a.keys = map[string]*heldKey{}
	a.lockGen++
	return n
}

func (a *Agent) idleLock() {
	if a.cfg.IdleLock <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, h := range a.keys {
		if time.Since(h.lastUsed) > a.cfg.IdleLock {
			delete(a.keys, id)
			a.cfg.Log.Printf("key %s dropped from memory after %s unused", id, a.cfg.IdleLock)
		}
	}
}

// handle relays one client connection to the engine.
func (a *Agent) handle(ctx context.Context, name string, c *net.UnixConn) {
	a.conns.Add(1)
	a.total.Add(1)
	defer a.conns.Add(-1)
	start := time.Now()
	if err := checkPeer(c); err != nil {
		a.cfg.Log.Printf("context %s: refused a connection: %v", name, err)
		c.Close()
		return
	}
	ep, ok := a.endpoint(name)
	if !ok {
		c.Close()
		return
	}
	key, err := a.key(ep)
	if err != nil {
		next := "unlock the keyring key store and retry"
		if ep.KeyStore != "keyring" {
			// File-store context keys are not encrypted: nothing to unlock.
			next = "docker tls keys ls shows which key the context expects"
		}
		a.refuse(c, fmt.Sprintf("the key of context %s is not available (%v)", name, err), next)
		return
	}
	up, bc, err := a.dial(ctx, ep, key)
	if err != nil {
		a.refuse(c, err.Error(), "docker tls verify "+name+" says why")
		return
	}
	sent, received := relay(c, up, bc)
	a.cfg.Log.Printf("context %s: connection closed after %s, %d bytes up, %d down", name, time.Since(start).Round(time.Millisecond), sent, received)
}

// refuse answers a connection that cannot be relayed the way the engine
// answers a failed request, so that the docker CLI prints the reason and
// the next step ("Error response from daemon: docker-tls agent: …")
// rather than "connection reset by peer"; the agent's log gets the reason.
// The answer's "reason" field is the reason alone, for docker tls verify.
// Only the request head is read, never relayed anywhere.
func (a *Agent) refuse(c *net.UnixConn, reason, next string) {
	a.cfg.Log.Print(reason)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return // not an HTTP client, or it gave up: closing is the answer
	}
	body, _ := json.Marshal(map[string]string{"message": "docker-tls agent: " + reason + "; " + next, "reason": reason})
	head := fmt.Sprintf("HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len(body))
	if req.Method == http.MethodHead {
		body = nil
	}
	_, _ = c.Write(append([]byte(head), body...))
	_ = c.CloseWrite()
	// Closing a Unix socket with unread data resets the peer, which could
	// lose the answer: read until the client closes (bounded by the deadline).
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<20))
}

func (a *Agent) dial(ctx context.Context, ep Endpoint, key crypto.Signer) (*tls.Conn, *batchConn, error) {
	u, err := url.Parse(ep.Remote)
	if err != nil || u.Host == "" {
		return nil, nil, fmt.Errorf("remote %q is not tcp://HOST:PORT", ep.Remote)
	}
	cfg := pki.ClientTLSBundle(ep.CAs, u.Hostname(), pki.TLSCertificate(ep.Cert, key))
	dctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	defer cancel()
	raw, err := (&net.Dialer{Timeout: a.cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext(dctx, "tcp", u.Host)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot connect to the engine of context %s at %s: %w", ep.Name, ep.Remote, err)
	}
	bc := &batchConn{Conn: raw}
	conn := tls.Client(bc, cfg)
	if err := conn.HandshakeContext(dctx); err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("TLS with the engine of context %s at %s failed: %w", ep.Name, ep.Remote, err)
	}
	return conn, bc, nil
}

// batchConn lets the relay hand a whole chunk's TLS records to the kernel in
// one write instead of one write per 16 KiB record: syscalls dominated the
// agent's profile on bulk uploads. Writes made while batching are buffered
// in order, so records from other paths (alerts) never overtake them.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      []byte
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batching {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

// batch runs write with batching on, then sends what it produced at once.
func (b *batchConn) batch(write func() error) error {
	b.mu.Lock()
	b.batching = true
	b.mu.Unlock()
	err := write()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	if len(b.buf) > 0 {
		_, ferr := b.Conn.Write(b.buf)
		b.buf = b.buf[:0]
		if err == nil {
			err = ferr
		}
	}
	return err
}

// relay copies both ways. When one side finishes sending, the other side's
// write half is closed (so `docker run -i` sees EOF on stdin while output
// still flows back); when both directions are done, both connections close.
// An error in either direction (a reset engine, a vanished client) closes
// both connections at once, so the other direction cannot hang on a peer
// that will never answer. A client that went away completely (killed, or
// an attach left idle) rather than half-closing is noticed within
// hangupCheck, and the engine's side is closed too.
func relay(client *net.UnixConn, up *tls.Conn, bc *batchConn) (sent, received int64) {
	var wg sync.WaitGroup
	wg.Add(2)
	done := make(chan struct{})
	var abortOnce sync.Once
	abort := func() { abortOnce.Do(func() { client.Close(); up.Close() }) }
	// 256 KiB buffers rather than io.Copy's 32 KiB: fewer read and write
	// calls on bulk transfers (docker cp, build contexts).
	go func() {
		defer wg.Done()
		buf := make([]byte, relayBuffer)
		var failed error
		for {
			n, rerr := client.Read(buf)
			if n > 0 {
				werr := bc.batch(func() error { _, err := up.Write(buf[:n]); return err })
				sent += int64(n)
				if werr != nil {
					failed = werr
					break
				}
			}
			if rerr != nil {
				if rerr != io.EOF {
					failed = rerr
				}
				break
			}
		}
		if failed != nil {
			abort()
			return
		}
		_ = up.CloseWrite()
		if canSeeHangup {
			go watchHangup(client, up, done)
		}
	}()
	go func() {
		defer wg.Done()
		var err error
		received, err = io.CopyBuffer(client, onlyReader{up}, make([]byte, relayBuffer))
		if err != nil {
			abort()
			return
		}
		_ = client.CloseWrite()
	}()
	wg.Wait()
	close(done)
	client.Close()
	up.Close()
	return sent, received
}

// hangupCheck is how often a half-closed client is checked for having gone.
const hangupCheck = 500 * time.Millisecond

// watchHangup closes the engine's side once the client has closed its
// connection completely; done ends the watch with the relay.
func watchHangup(client *net.UnixConn, up *tls.Conn, done <-chan struct{}) {
	t := time.NewTicker(hangupCheck)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if peerGone(client) {
				up.Close()
				return
			}
		}
	}
}

const relayBuffer = 256 << 10

// onlyReader hides WriterTo/ReaderFrom so io.CopyBuffer uses our buffer
// instead of the small one net.Conn's own fast paths would pick.
type onlyReader struct{ io.Reader }

// Status is what `docker tls agent status` reports.
type Status struct {
	PID         int               `json:"pid"`
	Started     time.Time         `json:"started"`
	Dir         string            `json:"dir"`
	Contexts    []ContextStatus   `json:"contexts"`
	Connections int64             `json:"connections"`
	Total       int64             `json:"totalConnections"`
	IdleLock    string            `json:"idleLock,omitempty"`
	Extra       map[string]string `json:"extra,omitempty"`
	Renewals    []RenewalStatus   `json:"renewals,omitempty"`
}

// ContextStatus is one served context.
type ContextStatus struct {
	Name      string `json:"name"`
	Socket    string `json:"socket"`
	Remote    string `json:"remote"`
	KeyLoaded bool   `json:"keyLoaded"`
}

func (a *Agent) status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{PID: os.Getpid(), Started: a.started, Dir: a.cfg.Dir, Connections: a.conns.Load(), Total: a.total.Load()}
	if a.cfg.IdleLock > 0 {
		st.IdleLock = a.cfg.IdleLock.String()
	}
	for name, s := range a.eps {
		_, loaded := a.keys[s.ep.KeyID]
		st.Contexts = append(st.Contexts, ContextStatus{Name: name, Socket: SocketPath(a.cfg.Dir, name), Remote: s.ep.Remote, KeyLoaded: loaded})
	}
	sort.Slice(st.Contexts, func(i, j int) bool { return st.Contexts[i].Name < st.Contexts[j].Name })
	for name, r := range a.renewals {
		st.Renewals = append(st.Renewals, RenewalStatus{Name: name, Due: r.due.At, NotAfter: r.due.NotAfter, Failures: r.failures,
			LastError: r.lastErr, NextTry: r.next, Renewed: r.lastOK})
	}
	sort.Slice(st.Renewals, func(i, j int) bool { return st.Renewals[i].Name < st.Renewals[j].Name })
	return st
}

type request struct {
	Op string `json:"op"`
}

type response struct {
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
	Locked int     `json:"locked,omitempty"`
}

func (a *Agent) serveControl(ctx context.Context, l net.Listener) {
	serve(l, a.cfg.Log, func(c net.Conn) { a.control(ctx, c) })
}

// control answers one request on the control socket.
func (a *Agent) control(ctx context.Context, c net.Conn) {
	defer c.Close()
	if err := checkPeer(c.(*net.UnixConn)); err != nil {
		a.cfg.Log.Printf("control: refused a connection: %v", err)
		return
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var req request
	if err := json.NewDecoder(io.LimitReader(c, 4096)).Decode(&req); err != nil {
		_ = json.NewEncoder(c).Encode(response{Error: "malformed request"})
		return
	}
	resp := response{OK: true}
	switch req.Op {
	case "status":
		st := a.status()
		resp.Status = &st
	case "lock":
		resp.Locked = a.Lock()
		a.cfg.Log.Printf("locked: %d key(s) dropped from memory", resp.Locked)
	case "reload":
		if err := a.reload(ctx); err != nil {
			resp = response{Error: err.Error()}
		}
		a.refreshDue()
	case "stop":
		defer a.stop()
	default:
		resp = response{Error: "unknown operation " + req.Op}
	}
	_ = json.NewEncoder(c).Encode(resp)
}

// Call sends one control request to the agent serving dir.
func Call(dir, op string) (*Status, int, error) {
	c, err := net.DialTimeout("unix", ControlPath(dir), 2*time.Second)
	if err != nil {
		return nil, 0, ErrNotRunning
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(c).Encode(request{Op: op}); err != nil {
		return nil, 0, err
	}
	var resp response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, 0, fmt.Errorf("agent: %w", err)
	}
	if !resp.OK {
		return nil, 0, errors.New("agent: " + resp.Error)
	}
	return resp.Status, resp.Locked, nil
}

// ErrNotRunning is returned by Call when no agent answers.
var ErrNotRunning = errors.New("the docker-tls agent is not running: start it with docker tls agent")

// Running reports whether an agent serves dir.
func Running(dir string) bool {
	c, err := net.DialTimeout("unix", ControlPath(dir), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
