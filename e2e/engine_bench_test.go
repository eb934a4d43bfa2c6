package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The engine figures make bench prints (go test -bench Engine ./e2e), each
// beside what a user would do instead. Each needs root and engine hosts.

// BenchmarkEngineSetup: engine setup of a fresh host, whole process and
// ssh included, beside that host's own `systemctl restart docker` (timed
// on the host: the floor any setup pays, since dockerd loads TLS files
// only at start).
func BenchmarkEngineSetup(b *testing.B) {
	e := NewEnv(b)
	c := NewSSHClient(b)
	h := StartEngineHosts(b, c, 1)[0]
	e.MustTLS("ca", "init")
	var setup, restart time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		e.MustTLS("engine", "setup", "root@"+h.Addr, "--ssh-config", c.Config, "--name", "bench")
		setup += time.Since(start)
		b.StopTimer()
		e.MustTLS("engine", "teardown", "bench")
		out := h.MustRoot("s=$(date +%s%N); systemctl restart docker; e=$(date +%s%N); echo $((e - s))")
		ns, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			b.Fatal(out)
		}
		restart += time.Duration(ns)
		b.StartTimer()
	}
	b.ReportMetric(setup.Seconds()/float64(b.N), "setup-s")
	b.ReportMetric(restart.Seconds()/float64(b.N), "restart-s")
	b.ReportMetric(float64(setup)/float64(restart), "setup/restart")
}

// BenchmarkEngineRenewAll: engine renew --all over 3 engines beside renew
// of 1 of them (the goal is concurrency: 3 should cost little more than 1;
// here the 3 "remote" hosts share this machine's cores), and the longest
// time the engine's API did not answer during a renewal, pinged every 10
// ms over mutual TLS.
func BenchmarkEngineRenewAll(b *testing.B) {
	c := NewSSHClient(b)
	hosts := StartEngineHosts(b, c, 3)
	three := NewEnv(b)
	three.MustTLS("ca", "init")
	for i, h := range hosts {
		three.MustTLS("engine", "setup", "root@"+h.Addr, "--ssh-config", c.Config, "--name", fmt.Sprintf("e%d", i))
	}
	client := contextClient(b, three, "e1")
	var d1, d3, down time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		three.MustTLS("engine", "renew", "--all")
		d3 += time.Since(start)
		stop := pingLoop(client, "https://"+hosts[1].Addr+":2376/_ping")
		start = time.Now()
		three.MustTLS("engine", "renew", "e1")
		d1 += time.Since(start)
		gap := stop()
		if gap > down {
			down = gap
		}
	}
	b.ReportMetric(d1.Seconds()/float64(b.N), "renew1-s")
	b.ReportMetric(d3.Seconds()/float64(b.N), "renew3-s")
	b.ReportMetric(float64(d3)/float64(d1), "3/1")
	b.ReportMetric(float64(down.Milliseconds()), "max-downtime-ms")
}

// contextClient is an HTTPS client with a context's TLS files.
func contextClient(b *testing.B, e *Env, name string) *http.Client {
	dir := filepath.Join(e.Dir, "export-"+name)
	e.MustTLS("export", name, "--format", "dir", "--out", dir)
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		b.Fatal(err)
	}
	return &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}},
		DisableKeepAlives: true, // each ping is a new connection, as a new docker command's is
	}}
}

// pingLoop pings url every 10 ms until the returned function is called,
// which returns the longest time between two answered pings.
func pingLoop(client *http.Client, url string) func() time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg      sync.WaitGroup
		longest time.Duration
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := time.Now()
		for ctx.Err() == nil {
			resp, err := client.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					if gap := time.Since(last); gap > longest {
						longest = gap
					}
					last = time.Now()
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() time.Duration {
		cancel()
		wg.Wait()
		return longest
	}
}

// BenchmarkEngineRotation: ca rotate of a CA used by 3 engines beside the
// same of a CA used by 1 (goal: at most 2x; engines change concurrently,
// three restarts each, and the 3 hosts share this machine).
func BenchmarkEngineRotation(b *testing.B) {
	c := NewSSHClient(b)
	hosts := StartEngineHosts(b, c, 4)
	e := NewEnv(b)
	e.MustTLS("ca", "init", "three")
	e.MustTLS("ca", "init", "one")
	for i, h := range hosts[:3] {
		e.MustTLS("engine", "setup", "root@"+h.Addr, "--ssh-config", c.Config, "--name", fmt.Sprintf("t%d", i), "--ca", "three")
	}
	e.MustTLS("engine", "setup", "root@"+hosts[3].Addr, "--ssh-config", c.Config, "--name", "o0", "--ca", "one")
	var d1, d3 time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		e.MustTLS("ca", "rotate", "three")
		d3 += time.Since(start)
		start = time.Now()
		e.MustTLS("ca", "rotate", "one")
		d1 += time.Since(start)
	}
	b.ReportMetric(d1.Seconds()/float64(b.N), "rotate1-s")
	b.ReportMetric(d3.Seconds()/float64(b.N), "rotate3-s")
	b.ReportMetric(float64(d3)/float64(d1), "rotate3/1")
}
