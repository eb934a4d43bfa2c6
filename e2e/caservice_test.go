package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
)

// startReplicas starts n `docker tls ca serve` processes of one CA, all
// on the database in $DOCKER_TLS_CA_DB of e, each on its own loopback port.
func startReplicas(t *testing.T, e *Env, ca string, n int, extra ...string) ([]string, []*Proc) {
	t.Helper()
	var urls []string
	var procs []*Proc
	for range n {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{"tls", "ca", "serve", "--ca", ca, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--san", "127.0.0.1"}, extra...)
		p := e.Start("docker", args...)
		p.WaitFor("Serving CA")
		urls = append(urls, fmt.Sprintf("https://127.0.0.1:%d", port))
		procs = append(procs, p)
	}
	return urls, procs
}

// mintMany mints n one-time client tokens in one call, kept out of every
// command line and registered as secrets no output may contain.
func mintMany(t *testing.T, e *Env, ca string, n int) []string {
	t.Helper()
	r := e.MustTLS("ca", "token", "--ca", ca, "--count", fmt.Sprint(n), "--ttl", "1h", "--format", "json")
	var minted []struct{ Token string }
	if err := json.Unmarshal([]byte(r.Stdout), &minted); err != nil || len(minted) != n {
		t.Fatalf("ca token --count %d: %d tokens, %v", n, len(minted), err)
	}
	out := make([]string, n)
	for i, m := range minted {
		out[i] = m.Token
	}
	return out
}

// enrollResult is what a load of enrollments did.
type enrollResult struct {
	certs    []string // serials, one per token that got a certificate
	failures []error
	elapsed  time.Duration
}

// enrollAll enrolls every token from `clients` concurrent clients, client
// i asking the replicas in an order rotated by i (so the load spreads),
// each request bounded by timeout. after, if set, runs once when `at`
// enrollments have finished.
func enrollAll(t *testing.T, fp string, urls, tokens []string, clients int, timeout time.Duration, at int, after func()) enrollResult {
	t.Helper()
	work := make(chan string, len(tokens))
	for _, tok := range tokens {
		work <- tok
	}
	close(work)
	var (
		mu   sync.Mutex
		res  enrollResult
		done atomic.Int32
		wg   sync.WaitGroup
		once sync.Once
	)
	start := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			order := append(slices.Clone(urls[i%len(urls):]), urls[:i%len(urls)]...)
			c := &remoteca.Client{URL: strings.Join(order, ","), Fingerprint: fp, Timeout: timeout}
			ctx := context.Background()
			ca, err := c.FetchCA(ctx)
			for tok := range work {
				var serial string
				if err == nil {
					key, _ := pki.GenerateKey(pki.ECDSAP256)
					csr, cerr := pki.NewCSR(key, "load", pki.SANs{})
					if cerr != nil {
						t.Error(cerr)
						return
					}
					var cert *x509.Certificate
					if cert, err = c.Sign(ctx, ca, remoteca.Auth{Token: tok}, csr, pki.ClientProfile, nil); err == nil {
						serial = fmt.Sprintf("%x", cert.SerialNumber)
					}
				}
				mu.Lock()
				if err != nil {
					res.failures = append(res.failures, err)
					err = nil
				} else {
					res.certs = append(res.certs, serial)
				}
				mu.Unlock()
				if int(done.Add(1)) == at && after != nil {
					once.Do(after)
				}
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// TestCAServiceReplicas: three ca serve replicas on one real PostgreSQL,
// 2000 one-time tokens enrolled by 20 concurrent clients spread across
// them; one replica is killed (SIGKILL) a third of the way through. Every
// client finishes on another, every token is used exactly once, and every
// certificate is in the shared inventory. Then 300 enrollments at once,
// each with a 5 s client timeout: none ends without a certificate.
func TestCAServiceReplicas(t *testing.T) {
	need(t, "docker")
	t.Parallel()
	host := NewEnv(t)
	host.UseFileKeystore()
	host.Setenv("DOCKER_TLS_CA_DB", StartPostgres(t, "team_ca"))
	host.MustTLS("ca", "init", "team")
	fp, err := remoteca.NormalizeFingerprint(strings.TrimSpace(host.MustTLS("ca", "inspect", "team", "--format", "{{.Fingerprint}}").Stdout))
	if err != nil {
		t.Fatal(err)
	}
	urls, procs := startReplicas(t, host, "team", 3)
	if !strings.Contains(procs[0].Output(), "State in postgres://") {
		t.Fatalf("ca serve does not say where its state is:\n%s", procs[0].Output())
	}

	const total, clients = 2000, 20
	tokens := mintMany(t, host, "team", total)
	res := enrollAll(t, fp, urls, tokens, clients, 30*time.Second, total/3, func() { procs[1].Kill() })
	if len(res.failures) > 0 {
		t.Fatalf("%d of %d enrollments failed; first: %v", len(res.failures), total, res.failures[0])
	}
	uniq := map[string]bool{}
	for _, s := range res.certs {
		uniq[s] = true
	}
	if len(res.certs) != total || len(uniq) != total {
		t.Fatalf("%d certificates, %d distinct, for %d tokens", len(res.certs), len(uniq), total)
	}
	t.Logf("replicas: %d enrollments from %d clients over 3 replicas (one killed after %d): %.0f/s", total, clients, total/3, float64(total)/res.elapsed.Seconds())

	// The shared state: each token used exactly once, each certificate recorded.
	uses := host.MustTLS("ca", "tokens", "ls", "--ca", "team", "--format", "{{.Uses}}").Stdout
	if n := strings.Count(uses, "1/1"); n != total || len(strings.Fields(uses)) != total {
		t.Fatalf("%d of %d tokens show 1/1 use", n, len(strings.Fields(uses)))
	}
	issued := strings.Fields(host.MustTLS("ca", "issued", "ls", "--ca", "team", "-q").Stdout)
	if len(issued) != total {
		t.Fatalf("the inventory holds %d certificates, want %d", len(issued), total)
	}
	for _, s := range issued {
		delete(uniq, s)
	}
	if len(uniq) != 0 {
		t.Fatalf("%d certificates the clients got are not in the inventory", len(uniq))
	}
	// Every replica issued some of them.
	for i, p := range procs {
		if !strings.Contains(p.Output(), "issued serial=") {
			t.Errorf("replica %d issued nothing:\n%s", i, p.Output())
		}
	}

	t.Run("a replica that is down is skipped by docker tls enroll", func(t *testing.T) {
		laptop := NewEnv(t)
		tok := mintToken(t, host, laptop, "--ca", "team", "--cn", "failover")
		port, _ := freePort()
		laptop.MustTLS("enroll", "team", "--ca-url", urls[1]+","+urls[0], "--token", tok, "--host", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--no-verify")
		if !strings.Contains(host.MustTLS("ca", "issued", "ls", "--ca", "team", "--format", "{{.CN}}").Stdout, "failover") {
			t.Fatal("the enrollment is not in the inventory")
		}
	})

	t.Run("300 enrollments at once with a 5 s client timeout all get a certificate", func(t *testing.T) {
		live := []string{urls[0], urls[2]}
		over := enrollAll(t, fp, live, mintMany(t, host, "team", 300), 300, 5*time.Second, 0, nil)
		if len(over.failures) > 0 || len(over.certs) != 300 {
			t.Fatalf("%d of 300 ended without a certificate; first: %v", 300-len(over.certs), over.failures[0])
		}
		t.Logf("overload: 300 concurrent enrollments, 5 s timeout: all done in %s", over.elapsed.Round(time.Millisecond))
	})
}

// TestAgentRenewsShortLivedCertificates: an agent-mode context enrolled for
// 15 s certificates stays usable across several automatic renewals while a
// bounded loop of `docker --context X version` runs, with zero failures;
// after `ca revoke`, the next renewal is refused (agent status, ls and
// verify say so) and the context stops working when its certificate
// expires, verify naming the command that enrolls again.
func TestAgentRenewsShortLivedCertificates(t *testing.T) {
	need(t, "docker", "secret-tool", "setpriv")
	RequireKeyring(t)
	needRoot(t)
	need(t, "dockerd")
	t.Parallel()
	host := NewEnv(t)
	host.UseFileKeystore()
	host.MustTLS("ca", "init", "team")
	srv := host.Path("srv")
	host.MustTLS("server", "issue", "localhost", "127.0.0.1", "--ca", "team", "--out", srv)
	d := StartDockerd(t, ServerDir(srv))
	url, serve := caServe(t, host, "team")

	laptop := NewEnv(t)
	laptop.MustTLS("agent")
	t.Cleanup(func() { laptop.TLS("agent", "stop") })
	const life = 15 * time.Second
	laptop.MustTLS("enroll", "short", "--agent", "--ca-url", url, "--token", mintToken(t, host, laptop, "--ca", "team", "--cn", "alice"),
		"--lifetime", life.String(), "--host", d.Host)

	type renewalView struct {
		Name, LastError string
		NotAfter        time.Time
		Failures        int
	}
	status := func() renewalView {
		var st struct{ Renewals []renewalView }
		if err := json.Unmarshal([]byte(laptop.MustTLS("agent", "status", "--format", "json").Stdout), &st); err != nil || len(st.Renewals) != 1 {
			t.Fatalf("agent status: %v %+v", err, st)
		}
		return st.Renewals[0]
	}
	// Three renewals at least (one every 10 s), the engine used all along.
	expiries := map[time.Time]bool{}
	var calls, failures int
	deadline := time.Now().Add(45 * time.Second)
	for len(expiries) < 4 && time.Now().Before(deadline) {
		r := laptop.Docker("--context", "short", "version", "--format", "{{.Server.Version}}")
		calls++
		if r.Code != 0 {
			failures++
			t.Errorf("docker version failed at %s: %s", time.Now().Format(time.RFC3339Nano), r.Stderr)
		}
		expiries[status().NotAfter] = true
		time.Sleep(300 * time.Millisecond)
	}
	if len(expiries) < 4 {
		t.Fatalf("%d certificates in 45 s, want the first and 3 renewals; agent status: %+v", len(expiries), status())
	}
	t.Logf("agent renewals: %d certificates of %s, %d docker version calls, %d failures", len(expiries), life, calls, failures)
	if n := strings.Count(serve.Output(), "renewed serial="); n < 3 {
		t.Fatalf("ca serve logged %d renewals:\n%s", n, serve.Output())
	}

	// Revoked: the next renewal is refused and everyone says so.
	host.MustTLS("ca", "revoke", "alice", "--ca", "team", "--reason", "laptop lost")
	last := status().NotAfter
	deadline = time.Now().Add(2 * life)
	for status().Failures == 0 && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	if st := status(); st.Failures == 0 || !strings.Contains(st.LastError, "revoked") {
		t.Fatalf("after ca revoke, agent status: %+v", st)
	}
	if ls := laptop.MustTLS("ls"); !strings.Contains(ls.Stderr, `automatic renewal of "short" has failed`) || !strings.Contains(ls.Stderr, "revoked") {
		t.Fatalf("ls after a refused renewal: %s", ls)
	}
	time.Sleep(time.Until(last.Add(500 * time.Millisecond)))
	if r := laptop.Docker("--context", "short", "version"); r.Code == 0 {
		t.Fatalf("docker version works after the revoked certificate expired: %s", r)
	}
	rep, _ := verifyJSON(t, laptop, "short")
	expectCheck(t, rep[0], "client-cert", "fail", "expired")
	expectCheck(t, rep[0], "renewal", "warn", "revoked")
	for _, c := range rep[0].Checks {
		if c.ID == "client-cert" && !strings.Contains(c.Fix, "docker tls enroll short --force --ca-url "+url) {
			t.Fatalf("verify's fix for the expired certificate: %q", c.Fix)
		}
	}
}
