// Package agent owns agent mode: a small local process that holds client
// keys from the OS keyring in memory only and relays each connection from a
// private Unix socket to the engine over mutual TLS, so that a Docker context
// can point at the socket and no key file exists on disk. It is a byte relay,
// not an HTTP proxy: hijacked and streamed connections (attach, exec, logs -f,
// events, build, cp) pass through unchanged.
package agent

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker-tls/docker-tls/internal/fsutil"
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

// ErrRunning is returned when another agent serves the directory.
var ErrRunning = errors.New("an agent is already running for this DOCKER_CONFIG (docker tls agent status)")

// Run serves until ctx ends or a stop request arrives, then removes its
// sockets. A directory left by a killed agent is cleaned up first.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	release, err := claimDir(cfg.Dir)
	if err != nil {
		return err
	}
	defer release()
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
	a.loop(ctx)
	ctl.Close()
	a.closeEndpoints()
	cfg.Log.Printf("agent stopped")
	return nil
}

// withDefaults is cfg with its zero durations and log filled in.
func (cfg Config) withDefaults() Config {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = log.New(io.Discard, "", 0)
	}
	if cfg.FullRescan == 0 {
		cfg.FullRescan = time.Minute
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = 5 * time.Minute
	}
	return cfg
}

// claimDir makes the agent's directory its own: private, served by no
// other agent, and rid of the sockets a killed one left. release gives it
// up.
func claimDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("agent directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", ControlPath(dir), time.Second); err == nil {
		c.Close()
		return nil, ErrRunning
	}
	// One agent per directory, for its whole life: a lock the OS drops
	// when the process dies, so two agents starting at once cannot remove
	// each other's sockets.
	release, err = fsutil.Lock(filepath.Join(dir, "agent.lock"), 0)
	if errors.Is(err, fsutil.ErrLockHeld) {
		return nil, ErrRunning
	}
	if err != nil {
		return nil, err
	}
	// Whatever is left is from an agent that died: remove its sockets.
	stale, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
	for _, s := range stale {
		_ = os.Remove(s)
	}
	return release, nil
}

// loop does the agent's periodic work until ctx ends: rescans of the
// contexts, renewals, and rotation checks.
func (a *Agent) loop(ctx context.Context) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	// Renewals are checked every second (an in-memory comparison), so
	// that a certificate of a few minutes is renewed on time.
	renewTick := time.NewTicker(time.Second)
	defer renewTick.Stop()
	checkTick := time.NewTicker(a.cfg.CheckEvery)
	defer checkTick.Stop()
	var checking atomic.Bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if a.rescan(ctx) {
				a.refreshDue()
			}
			a.idleLock()
		case <-renewTick.C:
			a.renewDue(ctx)
		case <-checkTick.C:
			if a.cfg.RotationCheck != nil && checking.CompareAndSwap(false, true) {
				go func() { defer checking.Store(false); a.renewNow(a.cfg.RotationCheck(ctx)) }()
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
