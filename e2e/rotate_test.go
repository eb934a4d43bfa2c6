package e2e

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/rotation"
)

// tlsFailure says whether a failed docker command failed for a TLS reason
// (a certificate not trusted or refused), as opposed to the engine being
// briefly away while it restarts.
func tlsFailure(stderr string) bool {
	for _, s := range []string{"certificate", "unknown authority", "tls: ", "x509"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// usageLoop runs `docker --context NAME version` for each context until
// stop is closed (at most 2000 times each), and counts the failures by
// kind.
type usageLoop struct {
	mu       sync.Mutex
	calls    int
	tls      []string
	other    int
	done     chan struct{}
	stopping chan struct{}
}

func startUsage(t *testing.T, e *Env, names []string) *usageLoop {
	u := &usageLoop{done: make(chan struct{}), stopping: make(chan struct{})}
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				select {
				case <-u.stopping:
					return
				default:
				}
				r := e.Docker("--context", name, "version", "--format", "{{.Server.Version}}")
				u.mu.Lock()
				u.calls++
				if r.Code != 0 {
					if tlsFailure(r.Stderr) {
						u.tls = append(u.tls, fmt.Sprintf("%s at %s: %s", name, time.Now().Format("15:04:05.000"), strings.TrimSpace(r.Stderr)))
					} else {
						u.other++
					}
				}
				u.mu.Unlock()
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	go func() { wg.Wait(); close(u.done) }()
	t.Cleanup(u.stop)
	return u
}

func (u *usageLoop) stop() {
	select {
	case <-u.stopping:
	default:
		close(u.stopping)
	}
	<-u.done
}

// TestCARotation: a CA rotated across 3 engine hosts and 10 contexts while
// every context is used in a loop: no call fails for a TLS reason (only
// while an engine restarts: connection refused), a container on each host
// keeps running (same ID, same start), every context and engine ends on
// the new CA alone, and an engine refuses a client certificate of the old
// CA. A context for an engine docker tls did not set up is left alone and
// listed with its commands.
func TestCARotation(t *testing.T) {
	t.Parallel() // own hosts; mostly waiting on restarts
	e := NewEnv(t)
	c := NewSSHClient(t)
	hosts := StartEngineHosts(t, c, 3)
	e.MustTLS("ca", "init", "team")
	ids := make([]string, len(hosts))
	for i, h := range hosts {
		id, started := hostContainer(t, h)
		ids[i] = id + " " + started
		requireOK(t, setupEngine(e, c, h, "root", "--name", fmt.Sprintf("rot%d", i), "--ca", "team"))
	}
	names := []string{"rot0", "rot1", "rot2"}
	for i := range 7 {
		name := fmt.Sprintf("extra%d", i)
		e.MustTLS("context", "create", name, "--host", "tcp://"+hosts[i%3].Addr+":2376", "--issue", "--ca", "team")
		names = append(names, name)
	}
	e.MustTLS("context", "create", "outside", "--host", "tcp://127.0.0.1:9", "--issue", "--ca", "team")
	oldDir := e.Path("old-client")
	e.MustTLS("export", "extra0", "--format", "dir", "--out", oldDir)
	for _, n := range names {
		requireOK(t, e.Docker("--context", n, "version", "--format", "{{.Server.Version}}"))
	}

	// Two laptops enrolled through ca serve: one follows the rotation by
	// renewing (no token), the other is excluded (lost).
	url, serve := caServe(t, e, "team")
	laptop, lost := NewEnv(t), NewEnv(t)
	engine0 := "tcp://" + hosts[0].Addr + ":2376"
	laptop.MustTLS("enroll", "via-serve", "--ca-url", url, "--token", mintToken(t, e, laptop, "--ca", "team", "--cn", "laptop"), "--host", engine0)
	lost.MustTLS("enroll", "lost", "--ca-url", url, "--token", mintToken(t, e, lost, "--ca", "team", "--cn", "lost-laptop"), "--host", engine0)

	// A third, in agent mode: its agent asks the service every second
	// whether the CA is being rotated, and renews by itself.
	agentLaptop := NewEnv(t)
	withAgent := keyringProbe() == nil
	switch {
	case withAgent:
		agentLaptop.MustTLS("enroll", "agent-laptop", "--agent", "--ca-url", url, "--token", mintToken(t, e, agentLaptop, "--ca", "team", "--cn", "agent-laptop"), "--host", engine0)
		agentLaptop.MustTLS("agent", "--ca-check", "1s")
		t.Cleanup(func() { agentLaptop.TLS("agent", "stop") })
	case os.Getenv("DOCKER_TLS_TEST_REQUIRE_KEYRING") == "1":
		t.Fatalf("no usable OS keyring for the agent-mode laptop: %v", keyringProbe())
	default:
		t.Logf("no usable OS keyring (%v): the agent-mode laptop is left out", keyringProbe())
	}

	use := startUsage(t, e, names)
	useLaptop := startUsage(t, laptop, []string{"via-serve"})
	// The agent-mode laptop is used through this first rotation, and
	// checked after it. (The rotations below are aborted or finished
	// without waiting for laptops: one that followed a rotation that is
	// then aborted is left on the aborted CA, a case ca rotate --abort
	// does not bring laptops back from yet.)
	var useAgent *usageLoop
	if withAgent {
		useAgent = startUsage(t, agentLaptop, []string{"agent-laptop"})
	}
	start := time.Now()
	// Stopped (kill -9) once every engine trusts both CAs, so that the
	// laptops renew in the middle of the rotation, as they would.
	killWhen(t, e, []string{"ca", "rotate", "team", "--exclude", "lost-laptop"}, func(st *rotation.State) bool { return st.Phase >= rotation.TrustBoth })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(serve.Output(), "rotation: CA team is being replaced") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if r := laptop.MustTLS("renew", "via-serve"); !strings.Contains(r.Stdout, "renewed") {
		t.Fatalf("laptop renew during the rotation: %s", r)
	}
	requireFail(t, lost.TLS("renew", "lost"), "revoked")
	if withAgent {
		next := readCert(t, filepath.Join(e.ConfigDir, "tls", "ca", "team", "next.pem"))
		id := next.Subject.CommonName[strings.LastIndex(next.Subject.CommonName, " ")+1:] // "abcd)"
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(agentLaptop.MustTLS("ls", "--format", "{{.Issuer}}").Stdout, id) && time.Now().Before(deadline) {
			time.Sleep(250 * time.Millisecond)
		}
		if ls := agentLaptop.MustTLS("ls", "--format", "{{.Issuer}}"); !strings.Contains(ls.Stdout, id) {
			t.Fatalf("the agent did not renew to the new CA (%s) by itself: %s", next.Subject.CommonName, ls.Stdout)
		}
	}
	r := e.MustTLS("ca", "rotate", "team", "--continue")
	took := time.Since(start)
	use.stop()
	useLaptop.stop()
	if !strings.Contains(r.Stdout, `Rotated CA "team": 3 engine(s) and 10 context(s)`) || !strings.Contains(r.Stdout, "context outside (tcp://127.0.0.1:9)") {
		t.Fatalf("ca rotate:\n%s", r)
	}
	for _, u := range []*usageLoop{use, useLaptop} {
		if len(u.tls) > 0 {
			t.Fatalf("%d of %d calls failed for a TLS reason during the rotation; first: %s", len(u.tls), u.calls, u.tls[0])
		}
	}
	t.Logf("rotation of 3 engines and 10 contexts, one laptop following through ca serve: %s; %d docker version calls, %d failed while an engine restarted, 0 for a TLS reason",
		took.Round(time.Millisecond), use.calls+useLaptop.calls, use.other+useLaptop.other)
	newCA := readCert(t, filepath.Join(e.ConfigDir, "tls", "ca", "team", "ca.pem"))
	if cert := contextCert(t, laptop, "via-serve"); cert.CheckSignatureFrom(newCA) != nil {
		t.Fatal("the laptop's certificate is not from the new CA")
	}
	requireOK(t, laptop.Docker("--context", "via-serve", "version", "--format", "{{.Server.Version}}"))
	if withAgent {
		useAgent.stop()
		if len(useAgent.tls) > 0 {
			t.Errorf("the agent-mode laptop: %d of %d calls failed for a TLS reason; first: %s", len(useAgent.tls), useAgent.calls, useAgent.tls[0])
		}
		// Its agent serves the context on the new CA alone.
		requireOK(t, agentLaptop.Docker("--context", "agent-laptop", "version", "--format", "{{.Server.Version}}"))
	}
	if r := lost.Docker("--context", "lost", "version"); r.Code == 0 || !tlsFailure(r.Stderr) {
		t.Fatalf("the excluded laptop still reaches the engine: %s", r)
	}

	onlyCA(t, e, names, readCert(t, filepath.Join(e.ConfigDir, "tls", "ca", "team", "ca.pem")))
	// The rotation's certificates are in the CA's inventory beside the
	// setups': ca revoke finds them.
	sources := strings.Split(e.MustTLS("ca", "issued", "ls", "--ca", "team", "--format", "{{.Source}}").Stdout, "\n")
	for i := range hosts {
		if n := slices.Index(sources, fmt.Sprintf("engine rot%d", i)); n < 0 || !slices.Contains(sources[n+1:], fmt.Sprintf("engine rot%d", i)) {
			t.Errorf("the inventory has not both server certificates of engine rot%d (setup's and the rotation's):\n%s", i, strings.Join(sources, "\n"))
		}
	}
	for i, h := range hosts {
		if got := e.Docker("--context", fmt.Sprintf("rot%d", i), "inspect", "-f", "{{.Id}} {{.State.StartedAt}}", "keep"); strings.TrimSpace(got.Stdout) != ids[i] {
			t.Errorf("%s: container %q, want %q (it did not keep running)", h.Name, got.Stdout, ids[i])
		}
		// The old CA's client certificate, presented with the new CA
		// trusted for the server: the engine refuses it.
		old := ClientTLS{CA: filepath.Join(e.ConfigDir, "tls", "ca", "team", "ca.pem"), Cert: filepath.Join(oldDir, "cert.pem"), Key: filepath.Join(oldDir, "key.pem")}
		if r := e.DockerVia("tcp://"+h.Addr+":2376", old, "version"); r.Code == 0 || !tlsFailure(r.Stderr) {
			t.Errorf("%s accepted a client certificate of the old CA: %s", h.Name, r)
		}
	}
	if st := e.MustTLS("ca", "rotate", "team", "--status"); !strings.Contains(st.Stdout, "No rotation") {
		t.Errorf("status after the rotation: %s", st)
	}
	if ls := e.MustTLS("keys", "ls", "--format", "{{.Owner}}"); strings.Count(ls.Stdout, "ca/team") != 1 {
		t.Errorf("the old CA key is still there:\n%s", ls.Stdout)
	}

	// From here on the laptop via-serve does not renew again: the
	// rotations below retire the old CA without it (--finish-now).
	t.Run("kill -9 in phases 2, 3 and 4, then --continue", func(t *testing.T) {
		use := startUsage(t, e, names)
		args := []string{"ca", "rotate", "team", "--finish-now"}
		for _, p := range []rotation.Phase{rotation.TrustBoth, rotation.Reissued, rotation.Retired} {
			killWhen(t, e, args, func(st *rotation.State) bool {
				for _, tg := range st.Targets {
					if tg.Done == p {
						return true
					}
				}
				return false
			})
			if st := e.MustTLS("ca", "rotate", "team", "--status"); !strings.Contains(st.Stdout, "in progress") || !strings.Contains(st.Stdout, "engine   rot0") {
				t.Fatalf("status after kill -9 in phase %d: %s", p, st)
			}
			if p == rotation.TrustBoth {
				// Nothing new from a CA in the middle of a rotation: its plan
				// would not include it.
				requireFail(t, e.TLS("context", "create", "latecomer", "--host", "tcp://"+hosts[0].Addr+":2376", "--issue", "--ca", "team"), "is being rotated")
				requireFail(t, e.TLS("ca", "rotate", "team"), "is in progress", "--continue")
				if fp := e.MustTLS("ca", "inspect", "team", "--format", "{{.NextFingerprint}}"); len(strings.TrimSpace(fp.Stdout)) != 95 {
					t.Fatalf("ca inspect during a rotation does not name the new CA: %q", fp.Stdout)
				}
			}
			args = []string{"ca", "rotate", "team", "--continue", "--finish-now"}
		}
		r := e.MustTLS(args...)
		use.stop()
		if !strings.Contains(r.Stdout, "Rotated CA") {
			t.Fatalf("--continue: %s", r)
		}
		if len(use.tls) > 0 {
			t.Fatalf("%d calls failed for a TLS reason; first: %s", len(use.tls), use.tls[0])
		}
		onlyCA(t, e, names, readCert(t, filepath.Join(e.ConfigDir, "tls", "ca", "team", "ca.pem")))
	})

	for _, p := range []rotation.Phase{rotation.TrustBoth, rotation.Reissued} {
		t.Run(fmt.Sprintf("--abort in phase %d returns everything to the old CA", p), func(t *testing.T) {
			current := readCert(t, filepath.Join(e.ConfigDir, "tls", "ca", "team", "ca.pem"))
			use := startUsage(t, e, names)
			killWhen(t, e, []string{"ca", "rotate", "team"}, func(st *rotation.State) bool {
				for _, tg := range st.Targets {
					if tg.Done == p && tg.Kind == rotation.Engine {
						return true
					}
				}
				return false
			})
			if p == rotation.Reissued {
				// An engine that cannot be reached stops the abort, named
				// with the fix; once it is back, the abort completes.
				if err := hosts[2].Unreachable(true); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = hosts[2].Unreachable(false) })
				requireFail(t, e.TLS("ca", "rotate", "team", "--abort"), "engine rot2", "--abort")
				if st := e.MustTLS("ca", "rotate", "team", "--status"); !strings.Contains(st.Stdout, "being aborted") || !strings.Contains(st.Stdout, "LAST ERROR") {
					t.Fatalf("status with an engine unreachable: %s", st)
				}
				if err := hosts[2].Unreachable(false); err != nil {
					t.Fatal(err)
				}
			}
			// The agent-mode laptop follows a rotation within a second:
			// one that renewed to the new CA is named by the abort.
			followed := withAgent && issuedBy(t, agentLaptop, "agent-laptop", readCert(t, filepath.Join(e.ConfigDir, "tls", "ca", "team", "next.pem")))
			r := e.MustTLS("ca", "rotate", "team", "--abort")
			use.stop()
			if !strings.Contains(r.Stdout, "Aborted the rotation") {
				t.Fatalf("--abort: %s", r)
			}
			t.Logf("the agent-mode laptop had renewed to the new CA: %v; --abort said:\n%s", followed, r.Stdout)
			if named := strings.Contains(r.Stdout, "agent-laptop (serial") && strings.Contains(r.Stdout, "must enroll again"); followed != named {
				t.Errorf("the agent-mode laptop renewed to the new CA: %v; named by --abort: %v\n%s", followed, named, r.Stdout)
			}
			if len(use.tls) > 0 {
				t.Fatalf("%d calls failed for a TLS reason; first: %s", len(use.tls), use.tls[0])
			}
			onlyCA(t, e, names, current)
			if ls := e.MustTLS("keys", "ls", "--format", "{{.Owner}}"); strings.Count(ls.Stdout, "ca/team") != 1 {
				t.Errorf("the aborted CA's key is still there:\n%s", ls.Stdout)
			}
		})
	}
	for i, h := range hosts {
		if got := e.Docker("--context", fmt.Sprintf("rot%d", i), "inspect", "-f", "{{.Id}} {{.State.StartedAt}}", "keep"); strings.TrimSpace(got.Stdout) != ids[i] {
			t.Errorf("%s: container %q after three rotations, want %q", h.Name, got.Stdout, ids[i])
		}
	}
}

// killWhen runs docker-tls args (the plugin binary itself, so that SIGKILL
// reaches the process doing the work) and kills it with SIGKILL as soon as
// the rotation record satisfies cond (bounded: 90 s).
func killWhen(t *testing.T, e *Env, args []string, cond func(*rotation.State) bool) {
	t.Helper()
	p := e.Start(pluginBinary, args...)
	recs := rotation.Records{Dir: filepath.Join(e.ConfigDir, "tls", "rotations")}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := recs.Get("team"); err == nil && cond(st) {
			p.Kill()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("docker-tls %s ended before the moment to kill it:\n%s", strings.Join(args, " "), p.Output())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("the rotation never reached the moment to kill it:\n%s", p.Output())
}

// onlyCA checks that every context trusts ca alone, holds a certificate
// from it, and works.
func onlyCA(t *testing.T, e *Env, names []string, ca *x509.Certificate) {
	t.Helper()
	for _, n := range names {
		r := e.Docker("context", "inspect", n, "--format", "{{.Storage.TLSPath}}")
		data, err := os.ReadFile(filepath.Join(strings.TrimSpace(r.Stdout), "docker", "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if certs, _ := pki.ParseCertificates(data); len(certs) != 1 || !certs[0].Equal(ca) {
			t.Fatalf("context %s trusts %d certificates, not %s alone", n, len(certs), ca.Subject.CommonName)
		}
		if cert := contextCert(t, e, n); cert.CheckSignatureFrom(ca) != nil {
			t.Fatalf("context %s: its certificate is not from %s", n, ca.Subject.CommonName)
		}
		requireOK(t, e.Docker("--context", n, "version", "--format", "{{.Server.Version}}"))
	}
}

// TestCARotationWaitsForLaptops: laptops enrolled through ca serve are
// part of what a rotation carries over. ca rotate counts them, and stops
// after phase 2 while one of them is still on the old CA (it trusts the
// old CA alone until it renews), naming it and
// the command that finishes; the agent-mode laptop renews by itself, the
// other at its next renew; --continue then retires the old CA, and every
// laptop works against the engine on the new CA alone, with no call
// failing for a TLS reason. A second rotation with --finish-now names the
// laptop that will need to enroll again.
func TestCARotationWaitsForLaptops(t *testing.T) {
	t.Parallel() // own host; mostly waiting on restarts
	RequireKeyring(t)
	e := NewEnv(t)
	c := NewSSHClient(t)
	h := StartEngineHosts(t, c, 1)[0]
	e.MustTLS("ca", "init", "lap")
	requireOK(t, setupEngine(e, c, h, "root", "--name", "lap-engine", "--ca", "lap"))
	url, serve := caServe(t, e, "lap")
	endpoint := "tcp://" + h.Addr + ":2376"
	plain, agent := NewEnv(t), NewEnv(t)
	plain.MustTLS("enroll", "eng", "--ca-url", url, "--token", mintToken(t, e, plain, "--ca", "lap", "--cn", "plain@laptop"), "--host", endpoint)
	agent.MustTLS("enroll", "eng", "--agent", "--ca-url", url, "--token", mintToken(t, e, agent, "--ca", "lap", "--cn", "agent@laptop"), "--host", endpoint)
	agent.MustTLS("agent", "--ca-check", "1s")
	t.Cleanup(func() { agent.TLS("agent", "stop") })

	uses := []*usageLoop{startUsage(t, e, []string{"lap-engine"}), startUsage(t, plain, []string{"eng"}), startUsage(t, agent, []string{"eng"})}
	r := e.MustTLS("ca", "rotate", "lap")
	t.Logf("docker tls ca rotate lap:\n%s", r.Stdout)
	if !strings.Contains(r.Stdout, "2 laptops enrolled through docker tls ca serve will follow") {
		t.Errorf("ca rotate should count the laptops that follow:\n%s", r)
	}
	if !strings.Contains(r.Stdout, "Waiting for ") || !strings.Contains(r.Stdout, "plain@laptop (serial") ||
		!strings.Contains(r.Stdout, "docker tls ca rotate lap --continue") || !strings.Contains(r.Stdout, "--ca-check") ||
		strings.Contains(r.Stdout, "Rotated CA") {
		t.Fatalf("ca rotate should stop after phase 2, waiting for plain@laptop:\n%s", r)
	}
	st := e.MustTLS("ca", "rotate", "lap", "--status")
	if !strings.Contains(st.Stdout, "phase 2 of 4 complete") || !strings.Contains(st.Stdout, "laptop   plain@laptop") {
		t.Fatalf("--status should list the laptop still on the old CA:\n%s", st)
	}
	// Nothing changes while it waits.
	if again := e.MustTLS("ca", "rotate", "lap", "--continue"); !strings.Contains(again.Stdout, "plain@laptop") || strings.Contains(again.Stdout, "Rotated CA") {
		t.Fatalf("--continue before the laptop renewed:\n%s", again)
	}

	// The agent renews by itself within its --ca-check; the other laptop
	// at its next renew.
	next := readCert(t, filepath.Join(e.ConfigDir, "tls", "ca", "lap", "next.pem"))
	deadline := time.Now().Add(30 * time.Second)
	for !issuedBy(t, agent, "eng", next) && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	if !issuedBy(t, agent, "eng", next) {
		t.Fatal("the agent-mode laptop did not renew to the new CA by itself")
	}
	if r := plain.MustTLS("renew", "eng"); !strings.Contains(r.Stdout, "renewed") {
		t.Fatalf("renew during the rotation: %s", r)
	}
	r = e.MustTLS("ca", "rotate", "lap", "--continue")
	if !strings.Contains(r.Stdout, `Rotated CA "lap": 1 engine(s) and 1 context(s)`) {
		t.Fatalf("--continue once both laptops renewed:\n%s", r)
	}
	time.Sleep(500 * time.Millisecond) // a few more calls on the new CA alone
	for _, u := range uses {
		u.stop()
		if len(u.tls) > 0 {
			t.Fatalf("%d of %d calls failed for a TLS reason; first: %s", len(u.tls), u.calls, u.tls[0])
		}
	}
	newCA := readCert(t, filepath.Join(e.ConfigDir, "tls", "ca", "lap", "ca.pem"))
	for name, laptop := range map[string]*Env{"plain": plain, "agent": agent} {
		if !issuedBy(t, laptop, "eng", newCA) {
			t.Errorf("the %s laptop's certificate is not from the new CA", name)
		}
		if r := laptop.Docker("--context", "eng", "version", "--format", "{{.Server.Version}}"); r.Code != 0 {
			st := laptop.TLS("agent", "status")
			logs, _ := filepath.Glob(filepath.Join(laptop.ConfigDir, "tls", "agent", "agent.log*"))
			var logText string
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				logText += string(b)
			}
			t.Fatalf("the %s laptop on the new CA alone: %s\nagent status: %s\nagent log:\n%s", name, r, st, logText)
		}
	}
	onlyCA(t, e, []string{"lap-engine"}, newCA)

	// Again, and this time the plain laptop does not renew: --finish-now
	// retires the old CA anyway and names it.
	r = e.MustTLS("ca", "rotate", "lap")
	if !strings.Contains(r.Stdout, "Waiting for ") || !strings.Contains(r.Stdout, "plain@laptop") {
		t.Fatalf("second rotation should wait for plain@laptop:\n%s", r)
	}
	// The agent follows this second rotation too: its context now
	// trusts a bundle (the CAs of the first rotation).
	next = readCert(t, filepath.Join(e.ConfigDir, "tls", "ca", "lap", "next.pem"))
	deadline = time.Now().Add(30 * time.Second)
	for !issuedBy(t, agent, "eng", next) && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	if !issuedBy(t, agent, "eng", next) {
		t.Fatalf("the agent-mode laptop did not follow the second rotation:\n%s", agent.TLS("agent", "status"))
	}
	r = e.MustTLS("ca", "rotate", "lap", "--continue", "--finish-now")
	if !strings.Contains(r.Stdout, "1 laptop will need to enroll again") || !strings.Contains(r.Stdout, "plain@laptop") || !strings.Contains(r.Stdout, `Rotated CA "lap"`) ||
		strings.Count(r.Stdout, "will need to enroll again") != 1 || strings.Contains(r.Stdout, "agent@laptop") {
		t.Fatalf("--finish-now should name the laptop and retire the old CA:\n%s", r)
	}
	// Once the service has followed (it rereads its CA every 2 s), the
	// laptop left behind cannot renew.
	followed := "CA lap is now " + pki.Fingerprint(readCert(t, filepath.Join(e.ConfigDir, "tls", "ca", "lap", "ca.pem")))
	deadline = time.Now().Add(20 * time.Second)
	for !strings.Contains(serve.Output(), followed) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	requireFail(t, plain.TLS("renew", "eng"))

	// A third rotation, aborted after a laptop renewed to its new CA (by
	// hand, the agent stopped so that the moment is ours): that CA is
	// about to be gone, and the abort names the laptop.
	agent.MustTLS("agent", "stop")
	if r = e.MustTLS("ca", "rotate", "lap"); !strings.Contains(r.Stdout, "agent@laptop (serial") {
		t.Fatalf("third rotation should wait for agent@laptop:\n%s", r)
	}
	agent.MustTLS("renew", "eng")
	r = e.MustTLS("ca", "rotate", "lap", "--abort")
	if !strings.Contains(r.Stdout, "1 laptop had already renewed to the new CA") || !strings.Contains(r.Stdout, "agent@laptop (serial") {
		t.Fatalf("--abort should name the laptop that renewed to the aborted CA:\n%s", r)
	}
}

// issuedBy says whether the certificate of context name (file or agent
// mode) was issued by ca, by the issuer docker tls ls shows (a rotated
// CA's name carries the day and its key id, so no two CAs share one).
func issuedBy(t *testing.T, e *Env, name string, ca *x509.Certificate) bool {
	t.Helper()
	r := e.MustTLS("ls", "--format", "{{.Name}}\t{{.Issuer}}")
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		if n, issuer, ok := strings.Cut(line, "\t"); ok && n == name {
			// The key id at the end ("ab12)"): ls shows the issuer as a
			// DN's CN, where the comma before it is escaped.
			cn := ca.Subject.CommonName
			return strings.Contains(issuer, cn[strings.LastIndex(cn, " ")+1:])
		}
	}
	t.Fatalf("context %s is not listed:\n%s", name, r.Stdout)
	return false
}
