package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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

// contextClient is an HTTPS client with a context's TLS files, a new
// connection per call.
func contextClient(b *testing.B, e *Env, name string) *http.Client {
	return &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig:   contextTLS(b, e, name),
		DisableKeepAlives: true, // each ping is a new connection, as a new docker command's is
	}}
}

// contextTLS is the TLS configuration of a context's exported files.
func contextTLS(b *testing.B, e *Env, name string) *tls.Config {
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
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}
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

// BenchmarkEnginePolicy: one engine without its policy and with it (the
// authorization plugin then judges every API call), side by side on the
// same host: docker version and docker ps through the real CLI, docker cp
// of 256 MiB in and out, and GET /containers/json from a Go load
// generator of 20 keep-alive mutual-TLS clients (calls/s and p99); then
// the time from ca revoke to the first refused call, pushed and pulled.
func BenchmarkEnginePolicy(b *testing.B) {
	e := NewEnv(b)
	c := NewSSHClient(b)
	h := StartEngineHosts(b, c, 1)[0]
	e.MustTLS("ca", "init")
	requireOK(b, setupEngine(e, c, h, "root", "--name", "perf", "--client-name", "admin-1", "--group", "admins"))
	busyboxImage(b, e, "perf")
	requireOK(b, e.Docker("--context", "perf", "run", "-d", "--name", "box", "--network", "none", "busybox:local", "sleep", "3600"))
	big := e.Path("256m.bin")
	blob := make([]byte, 256<<20)
	if _, err := rand.Read(blob); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(big, blob, 0o600); err != nil {
		b.Fatal(err)
	}
	requireOK(b, e.Docker("--context", "perf", "cp", big, "box:/tmp/warm.bin")) // warm the caches
	cfg := contextTLS(b, e, "perf")
	url := "https://" + h.Addr + ":2376/v1.41/containers/json"
	var off, on policyFigures
	for i := 0; i < b.N; i++ {
		off.add(measureEngine(b, e, h, cfg, url, big))
		e.MustTLS("engine", "policy", "set", "perf", "--grant", "group:admins=admin")
		on.add(measureEngine(b, e, h, cfg, url, big))
		e.MustTLS("engine", "policy", "off", "perf")
	}
	push, pull := revocationToRefusal(b, e, h)
	b.ReportMetric(push.Seconds()*1e3, "revoke-push-ms")
	b.ReportMetric(pull.Seconds()*1e3, "revoke-pull-ms")
	n := float64(b.N)
	b.ReportMetric(off.version.Seconds()*1e3/n, "version-off-ms")
	b.ReportMetric(on.version.Seconds()*1e3/n, "version-on-ms")
	b.ReportMetric(float64(on.version)/float64(off.version), "version-on/off")
	b.ReportMetric(off.ps.Seconds()*1e3/n, "ps-off-ms")
	b.ReportMetric(on.ps.Seconds()*1e3/n, "ps-on-ms")
	b.ReportMetric(float64(on.ps)/float64(off.ps), "ps-on/off")
	b.ReportMetric(256/off.cpIn.Seconds()*n, "cpin-off-MiB/s")
	b.ReportMetric(256/on.cpIn.Seconds()*n, "cpin-on-MiB/s")
	b.ReportMetric(float64(off.cpIn)/float64(on.cpIn), "cpin-on/off")
	b.ReportMetric(256/off.cpOut.Seconds()*n, "cpout-off-MiB/s")
	b.ReportMetric(256/on.cpOut.Seconds()*n, "cpout-on-MiB/s")
	b.ReportMetric(float64(off.cpOut)/float64(on.cpOut), "cpout-on/off")
	b.ReportMetric(off.rate/n, "list-off-calls/s")
	b.ReportMetric(on.rate/n, "list-on-calls/s")
	b.ReportMetric(on.rate/off.rate, "list-on/off")
	b.ReportMetric(off.p99.Seconds()*1e3/n, "p99-off-ms")
	b.ReportMetric(on.p99.Seconds()*1e3/n, "p99-on-ms")
	b.ReportMetric(float64(off.dockerdCPU.Microseconds())/n, "dockerd-cpu-off-us/call")
	b.ReportMetric(float64(on.dockerdCPU.Microseconds())/n, "dockerd-cpu-on-us/call")
	b.ReportMetric(float64(on.pluginCPU.Microseconds())/n, "plugin-cpu-us/call")
}

// revocationToRefusal times, on the engine "perf", from ca revoke to the
// revoked identity's first refused call (docker ps through the real CLI): pushed (ca revoke reaches the engine over SSH), and pulled (the
// plugin fetches the CA service's list every 5 s; nothing is pushed).
func revocationToRefusal(b *testing.B, e *Env, h *EngineHost) (push, pull time.Duration) {
	endpoint := strings.TrimSpace(e.MustTLS("ls", "--format", `{{if eq .Name "perf"}}{{.Host}}{{end}}`).Stdout)
	for _, id := range []string{"gone-pushed", "gone-pulled"} {
		e.MustTLS("context", "create", id, "--host", endpoint, "--issue", "--client-name", id, "--group", "admins")
	}
	port, err := freePort()
	if err != nil {
		b.Fatal(err)
	}
	listen := fmt.Sprintf("%s:%d", h.Gateway, port)
	serve := e.Start("docker", "tls", "ca", "serve", "--listen", listen, "--san", h.Gateway)
	defer serve.Stop()
	serve.WaitFor("Serving CA")
	e.MustTLS("engine", "policy", "set", "perf", "--grant", "group:admins=admin")
	push = untilRefused(b, e, h, "gone-pushed", "ca", "revoke", "gone-pushed")
	e.MustTLS("engine", "policy", "set", "perf", "--grant", "group:admins=admin", "--crl-url", "https://"+listen+"/crl", "--crl-interval", "5s")
	pull = untilRefused(b, e, h, "gone-pulled", "ca", "revoke", "gone-pulled", "--no-push")
	e.MustTLS("engine", "policy", "off", "perf")
	return push, pull
}

// untilRefused checks ctx may docker ps on the engine h, runs docker tls
// revoke…, then docker ps as ctx until the engine refuses it as revoked
// (at most 30 s; the plugin's log on failure): the time from the start of
// the revocation.
func untilRefused(t testing.TB, e *Env, h *EngineHost, ctx string, revoke ...string) time.Duration {
	t.Helper()
	requireOK(t, e.Docker("--context", ctx, "ps"))
	start := time.Now()
	e.MustTLS(revoke...)
	for {
		r := e.Docker("--context", ctx, "ps")
		if r.Code != 0 && strings.Contains(r.Stderr, "is revoked") {
			return time.Since(start)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("%s is not refused 30 s after docker tls %s: %s\n%s", ctx, strings.Join(revoke, " "), r, h.MustRoot("journalctl -u docker-tls-authz --no-pager | tail -20"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// policyFigures are one engine's figures, summed over iterations.
type policyFigures struct {
	version, ps, cpIn, cpOut, p99 time.Duration
	rate                          float64
	// dockerdCPU and pluginCPU are CPU time per listing call.
	dockerdCPU, pluginCPU time.Duration
}

func (f *policyFigures) add(g policyFigures) {
	f.version += g.version
	f.ps += g.ps
	f.cpIn += g.cpIn
	f.cpOut += g.cpOut
	f.p99 += g.p99
	f.rate += g.rate
	f.dockerdCPU += g.dockerdCPU
	f.pluginCPU += g.pluginCPU
}

// measureEngine takes one set of figures, after a warm-up: the mean of 20
// docker version and 20 docker ps, the best of three copies each way, 3 s of
// load with the CPU dockerd and the plugin used per call.
func measureEngine(b *testing.B, e *Env, h *EngineHost, cfg *tls.Config, url, big string) policyFigures {
	var f policyFigures
	mean := func(args ...string) time.Duration {
		const runs = 20
		start := time.Now()
		for i := 0; i < runs; i++ {
			requireOK(b, e.Docker(append([]string{"--context", "perf"}, args...)...))
		}
		return time.Since(start) / runs
	}
	// Warm up: the first calls after a change pay for connections and
	// caches.
	mean("version")
	loadList(b, cfg, url, 20, time.Second)
	f.version = mean("version")
	f.ps = mean("ps")
	// Copies: the best of three each way, each after a sync, so that
	// none pays for writing back what the one before left dirty (the
	// engine's disk is this machine's).
	back := e.Path("back.bin")
	flush := func() {
		if out, err := exec.Command("sync").CombinedOutput(); err != nil {
			b.Fatalf("sync: %v %s", err, out)
		}
	}
	for range 3 {
		flush()
		start := time.Now()
		requireOK(b, e.Docker("--context", "perf", "cp", big, "box:/tmp/in.bin"))
		if d := time.Since(start); f.cpIn == 0 || d < f.cpIn {
			f.cpIn = d
		}
		flush()
		start = time.Now()
		requireOK(b, e.Docker("--context", "perf", "cp", "box:/tmp/in.bin", back))
		if d := time.Since(start); f.cpOut == 0 || d < f.cpOut {
			f.cpOut = d
		}
		if st, err := os.Stat(back); err != nil || st.Size() != 256<<20 {
			b.Fatalf("docker cp out: %v", err)
		}
		os.Remove(back)
	}
	cpu0 := cpuTicks(b, h)
	f.rate, f.p99 = loadList(b, cfg, url, 20, 3*time.Second)
	cpu1 := cpuTicks(b, h)
	calls := f.rate * 3
	f.dockerdCPU = time.Duration(float64(cpu1[0]-cpu0[0]) * float64(10*time.Millisecond) / calls)
	f.pluginCPU = time.Duration(float64(cpu1[1]-cpu0[1]) * float64(10*time.Millisecond) / calls)
	return f
}

// cpuTicks are the CPU ticks (user and system, 100 a second) dockerd and
// the authorization plugin have used on the host, 0 for one not running.
func cpuTicks(b *testing.B, h *EngineHost) [2]int64 {
	out := h.MustRoot(`for u in docker docker-tls-authz; do
  pid=$(systemctl show -p MainPID --value $u 2>/dev/null)
  if [ -n "$pid" ] && [ "$pid" != 0 ]; then awk '{ print $14 + $15 }' /proc/$pid/stat; else echo 0; fi
done`)
	var t [2]int64
	for i, f := range strings.Fields(out) {
		if i < 2 {
			t[i], _ = strconv.ParseInt(f, 10, 64)
		}
	}
	return t
}

// loadList runs clients keep-alive clients, each calling url in a loop
// for d, and returns the calls per second and the 99th percentile.
//
// Each client is one goroutine on one mutual-TLS connection that writes a
// request and reads the answer in turn, as wrk does (wrk itself cannot
// present a client certificate). net/http's client, with two goroutines
// per connection handing each call over, took about 210 us of CPU per
// call, a fifth of this 2-core machine that the engine under test
// shares; this takes about 110.
func loadList(b *testing.B, cfg *tls.Config, url string, clients int, d time.Duration) (float64, time.Duration) {
	u, err := neturl.Parse(url)
	if err != nil || u.Scheme != "https" {
		b.Fatalf("load: %q is not an https URL (%v)", url, err)
	}
	req := []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: docker-tls-bench\r\n\r\n")
	var (
		mu    sync.Mutex
		lat   []time.Duration
		fails []error
		wg    sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine, err := loadOne(cfg, u.Host, req, deadline)
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, mine...)
			if err != nil {
				fails = append(fails, err)
			}
		}()
	}
	wg.Wait()
	if len(fails) > 0 || len(lat) == 0 {
		b.Fatalf("GET %s: %d clients failed (%v), %d calls answered", url, len(fails), errors.Join(fails...), len(lat))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return float64(len(lat)) / d.Seconds(), lat[len(lat)*99/100]
}

// loadOne calls on one connection until deadline: the latency of each
// call, and what stopped it early.
func loadOne(cfg *tls.Config, addr string, req []byte, deadline time.Time) ([]time.Duration, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	var lat []time.Duration
	for time.Now().Before(deadline) {
		start := time.Now()
		if err := conn.SetDeadline(start.Add(10 * time.Second)); err != nil {
			return lat, err
		}
		if _, err := conn.Write(req); err != nil {
			return lat, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return lat, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return lat, err
		}
		if resp.StatusCode != http.StatusOK {
			return lat, fmt.Errorf("%s", resp.Status)
		}
		lat = append(lat, time.Since(start))
	}
	return lat, nil
}
