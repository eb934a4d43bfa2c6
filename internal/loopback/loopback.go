// Package loopback owns the test-only TCP servers on 127.0.0.1 that the
// probe and end-to-end tests point verify at: a port that never answers,
// one that speaks plain HTTP, one that sends an SSH banner. Only tests
// import it.
package loopback

import (
	"net"
	"testing"
	"time"
)

// Serve listens on a free 127.0.0.1 port and gives each connection to
// handle. After handle returns the connection stays open until the test
// ends (at most 30 s), so an endpoint that sends nothing stays silent
// rather than closing. It returns the tcp:// address.
func Serve(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
				select {
				case <-stop:
				case <-time.After(30 * time.Second):
				}
			}()
		}
	}()
	return "tcp://" + l.Addr().String()
}
