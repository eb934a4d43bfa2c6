package agent

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// BenchmarkUpload sends 16 MiB to a mutual-TLS sink the way the docker CLI
// sends a docker cp or build body (chunked encoding through a 4 KiB bufio
// writer: writes of 4096, 28678 and 2 bytes per 32 KiB chunk), once
// directly over TLS as the CLI does with a TLS context, once through the
// agent's Unix socket. The ratio of the two is the relay's cost without
// dockerd and the docker CLI in the measurement.
func BenchmarkUpload(b *testing.B) {
	f := newFixture(b)
	remote := tlsEngine(b, f.ca, func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c)
		_, _ = c.Write([]byte("ok"))
	})
	const size = 16 << 20
	// One chunk of chunked transfer encoding: "8000\r\n", 32 KiB, "\r\n".
	chunk := make([]byte, 6+32<<10+2)
	upload := func(b *testing.B, c net.Conn, closeWrite func() error) {
		for sent := 0; sent < size; sent += len(chunk) {
			for _, part := range [][]byte{chunk[:4096], chunk[4096 : len(chunk)-2], chunk[len(chunk)-2:]} {
				if _, err := c.Write(part); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := closeWrite(); err != nil {
			b.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if got, err := io.ReadAll(c); err != nil || string(got) != "ok" {
			b.Fatalf("answer %q %v", got, err)
		}
		c.Close()
	}

	b.Run("direct", func(b *testing.B) {
		u, _ := url.Parse(remote)
		cfg := pki.ClientTLS(f.ca.Cert, "127.0.0.1", pki.TLSCertificate(f.cert, f.key))
		b.SetBytes(size)
		for b.Loop() {
			c, err := tls.Dial("tcp", u.Host, cfg)
			if err != nil {
				b.Fatal(err)
			}
			upload(b, c, c.CloseWrite)
		}
	})

	b.Run("agent", func(b *testing.B) {
		dir := b.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		done := startAgent(b, ctx, dir, remote, f, nil)
		defer func() { cancel(); <-done }()
		b.SetBytes(size)
		for b.Loop() {
			c, err := net.Dial("unix", SocketPath(dir, "e1"))
			if err != nil {
				b.Fatal(err)
			}
			upload(b, c, c.(*net.UnixConn).CloseWrite)
		}
	})
}
