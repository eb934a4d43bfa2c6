package agent

import (
	"bufio"
	"context"
	"crypto"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

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
