package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestEnginePolicy: an engine's policy on a real host (Debian's dockerd
// 20.10 under systemd-nspawn), set from the laptop. A policy that leaves
// this laptop no admin is refused with the host untouched; policy set
// installs the plugin and turns it on by a reload (dockerd keeps its pid);
// the real docker CLI, through contexts whose certificates carry users and
// groups, is allowed or refused by role, each refusal in one sentence; the
// host's own socket still works; the audit trail names each refused call;
// a changed policy is in force at once; policy off and teardown take it
// all away, and the host is back byte for byte.
func TestEnginePolicy(t *testing.T) {
	t.Parallel() // own host; mostly waiting on restarts
	e := NewEnv(t)
	c := NewSSHClient(t)
	h := StartEngineHosts(t, c, 1)[0]
	e.MustTLS("ca", "init")
	pristine := h.MustRoot(hostFiles)
	requireOK(t, setupEngine(e, c, h, "root", "--name", "pol", "--client-name", "admin-1", "--group", "admins"))
	endpoint := strings.TrimSpace(e.MustTLS("ls", "--format", `{{if eq .Name "pol"}}{{.Host}}{{end}}`).Stdout)
	for _, id := range [][]string{{"alice", "--group", "ops"}, {"bob"}, {"nobody"}} {
		e.MustTLS(append([]string{"context", "create", id[0], "--host", endpoint, "--issue", "--client-name", id[0]}, id[1:]...)...)
	}
	busyboxImage(t, e, "pol")
	dockerdPID := func() string { return strings.TrimSpace(h.MustRoot("systemctl show docker -p MainPID --value")) }
	pid := dockerdPID()

	// Refused before anything is written: no admin would be left among
	// this laptop's identities; a binary the host cannot run.
	set := h.MustRoot(hostFiles)
	requireFail(t, e.TLS("engine", "policy", "set", "pol", "--grant", "user:bob=viewer"),
		"none of this laptop's identities for the engine", "user:admin-1 (groups admins)", "--force")
	notELF := filepath.Join(t.TempDir(), "docker-tls-darwin")
	if err := os.WriteFile(notELF, []byte("\xcf\xfa\xed\xfe"), 0o755); err != nil {
		t.Fatal(err)
	}
	requireFail(t, e.TLS("engine", "policy", "set", "pol", "--grant", "group:admins=admin", "--plugin-binary", notELF), "not a Linux executable")
	requireFail(t, e.TLS("engine", "policy", "set", "pol", "--grant", "user:bob=root"), "root")
	if after := h.MustRoot(hostFiles); after != set {
		t.Fatalf("a refused policy set changed the host:\nbefore:\n%s\nafter:\n%s", set, after)
	}

	r := e.MustTLS("engine", "policy", "set", "pol", "--grant", "group:admins=admin", "--grant", "group:ops=operator", "--grant", "user:bob=viewer")
	if !strings.Contains(r.Stdout, "pol: policy in force: group:admins=admin group:ops=operator user:bob=viewer, local calls allowed; plugin installed, dockerd reloaded (no restart)") {
		t.Errorf("policy set said:\n%s", r)
	}
	if now := dockerdPID(); now != pid {
		t.Errorf("dockerd was restarted (pid %s, now %s): the plugin is turned on by a reload", pid, now)
	}
	if r := e.MustTLS("engine", "policy", "set", "pol", "--grant", "group:admins=admin"); !strings.Contains(r.Stdout, "pol: the policy was in force already") {
		t.Errorf("a second identical set: %s", r)
	}
	allowed := func(ctx string, args ...string) {
		t.Helper()
		requireOK(t, e.Docker(append([]string{"--context", ctx}, args...)...))
	}
	refused := func(ctx string, want []string, args ...string) {
		t.Helper()
		r := e.Docker(append([]string{"--context", ctx}, args...)...)
		if r.Code == 0 {
			t.Fatalf("docker --context %s %s was allowed: %s", ctx, strings.Join(args, " "), r)
		}
		t.Logf("docker --context %s %s: %s", ctx, strings.Join(args, " "), strings.TrimSpace(r.Stderr))
		for _, w := range want {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("docker --context %s %s: %q is not in the refusal:\n%s", ctx, strings.Join(args, " "), w, r.Stderr)
			}
		}
	}
	// Every call of the role table, as each role and as no role.
	creates := roleMatrix(t, e, "pol", []matrixIdentity{
		{ctx: "nobody", user: "nobody", role: "none"},
		{ctx: "bob", user: "bob", role: "viewer"},
		{ctx: "alice", user: "alice", groups: "ops", role: "operator"},
		{ctx: "pol", user: "admin-1", groups: "admins", role: "admin"},
	})
	// The host's own socket carries no certificate: allowed by default.
	h.MustRoot("docker ps -q")

	audit := h.MustRoot("cat /var/log/docker-tls/audit.log")
	for _, w := range []string{`"user":"bob"`, `"allow":false`, `"needs":"admin"`, `"user":"alice"`, `"rule":"group:admins"`} {
		if !strings.Contains(audit, w) {
			t.Errorf("the audit trail has no %s:\n%s", w, audit)
		}
	}
	if mode := strings.TrimSpace(h.MustRoot("stat -c %a /var/log/docker-tls/audit.log")); mode != "600" {
		t.Errorf("audit trail mode %s, want 600", mode)
	}

	// The trail over SSH: filtered on the host, as a table, as JSON, and
	// followed.
	aud := e.MustTLS("engine", "audit", "pol", "--denied", "--user", "alice").Stdout
	if n := strings.Count(aud, "alice             refused   operator  POST    /v1.41/containers/create"); n != creates {
		t.Errorf("engine audit --denied --user alice: %d refusals of containers/create, want %d:\n%s", n, creates, aud)
	}
	if strings.Contains(aud, "allowed") || strings.Contains(aud, "bob") {
		t.Errorf("engine audit --denied --user alice shows others:\n%s", aud)
	}
	var users = map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(e.MustTLS("engine", "audit", "pol", "--since", "1h", "--format", "json").Stdout), "\n") {
		var d struct {
			User  string `json:"user"`
			Allow bool   `json:"allow"`
		}
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("engine audit --format json: %v: %q", err, line)
		}
		users[d.User] = true
	}
	if !users["bob"] || !users["alice"] || !users["admin-1"] || !users["nobody"] {
		t.Errorf("engine audit --since 1h: users %v", users)
	}
	follow := e.Start("docker", "tls", "engine", "audit", "pol", "--follow", "--user", "nobody", "--since", "1s")
	time.Sleep(time.Second) // the reader is at the trail's end
	refused("nobody", []string{"has no role"}, "images")
	follow.WaitFor("nobody            refused   none      GET     /v1.41/images/json")
	follow.Stop()

	show := e.MustTLS("engine", "policy", "show", "pol").Stdout
	for _, w := range []string{"State:        enforced", "Local calls:  allowed", "group:ops      operator", "user:bob       viewer"} {
		if !strings.Contains(show, w) {
			t.Errorf("policy show has no %q:\n%s", w, show)
		}
	}
	var view struct {
		State  string `json:"state"`
		Grants []struct{ Subject, Role string }
	}
	if err := json.Unmarshal([]byte(e.MustTLS("engine", "policy", "show", "pol", "--format", "json").Stdout), &view); err != nil || view.State != "enforced" || len(view.Grants) != 3 {
		t.Errorf("policy show --format json: %+v, %v", view, err)
	}

	// A change is in force at once: the plugin reads the new file.
	e.MustTLS("engine", "policy", "set", "pol", "--revoke-grant", "user:bob", "--grant", "group:ops=viewer", "--local", "deny")
	refused("bob", []string{`"bob" has no role`}, "ps")
	refused("alice", []string{`has the role viewer`}, "run", "--rm", "--network", "none", "busybox:local", "true")
	if out, err := h.Root("docker ps -q"); err == nil || !strings.Contains(out, "calls without a client certificate") {
		t.Errorf("--local deny: the host's own docker ps: %v\n%s", err, out)
	}
	// engine renew reads dockerd through the host's socket: refused, with
	// the way out, and the host untouched.
	denied := h.MustRoot(hostFiles)
	requireFail(t, e.TLS("engine", "renew", "pol"), "pol: FAILED: dockerd on the host refuses the host's own docker info", "engine policy set pol --local allow")
	if after := h.MustRoot(hostFiles); after != denied {
		t.Errorf("a refused renew changed the host:\nbefore:\n%s\nafter:\n%s", denied, after)
	}

	// Revocation, pushed: ca revoke sends the CA's list to the engine over
	// SSH; alice's next call is refused, the admin's is not.
	start := time.Now()
	r = e.MustTLS("ca", "revoke", "alice", "--reason", "laptop lost")
	if !strings.Contains(r.Stdout, "pol: refuses the revoked certificates now") {
		t.Errorf("ca revoke did not say it reached the engine:\n%s", r)
	}
	refused("alice", []string{`"alice" (groups ops)`, "is revoked"}, "ps")
	t.Logf("revocation to refusal, pushed: %s", time.Since(start).Round(time.Millisecond))
	allowed("pol", "ps")

	// A list from another CA is refused on the host, and the one held
	// stays in force.
	e.MustTLS("ca", "init", "other")
	otherCRL := e.MustTLS("ca", "crl", "other").Stdout
	if out, err := h.As("root", "/usr/local/lib/docker-tls/docker-tls authz-plugin --install-crl", []byte(otherCRL)); err == nil || !strings.Contains(out, "not signed by a trusted CA") {
		t.Errorf("a CRL of another CA: %v\n%s", err, out)
	}
	refused("alice", []string{"is revoked"}, "ps")

	// Revocation, pulled: the engine fetches the list from the CA service
	// every interval; nobody pushes it.
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("%s:%d", h.Gateway, port)
	serve := e.Start("docker", "tls", "ca", "serve", "--listen", listen, "--san", h.Gateway)
	serve.WaitFor("Serving CA")
	e.MustTLS("engine", "policy", "set", "pol", "--crl-url", "https://"+listen+"/crl", "--crl-interval", "5s", "--grant", "user:nobody=viewer")
	pulled := untilRefused(t, e, h, "nobody", "ca", "revoke", "nobody", "--no-push")
	t.Logf("revocation to refusal, pulled every 5 s: %s", pulled.Round(time.Millisecond))
	allowed("pol", "ps")
	if show := e.MustTLS("engine", "policy", "show", "pol").Stdout; !strings.Contains(show, "2 revoked") || !strings.Contains(show, "pulled from https://"+listen+"/crl every 5s") {
		t.Errorf("policy show after the pull:\n%s", show)
	}
	if ls := e.MustTLS("engine", "ls", "--check", "--format", "{{.Name}}: {{.Revocations}}").Stdout; !regexp.MustCompile(`(?m)^pol: issued \d+s ago$`).MatchString(ls) {
		t.Errorf("engine ls --check does not say how old the engine's revocation list is:\n%s", ls)
	}

	// Off: dockerd stops consulting the plugin (a reload), the plugin
	// goes; the audit trail stays.
	r = e.MustTLS("engine", "policy", "off", "pol")
	if !strings.Contains(r.Stdout, "pol: policy off") {
		t.Errorf("policy off said:\n%s", r)
	}
	allowed("nobody", "ps")
	h.MustRoot("docker ps -q")
	if now := dockerdPID(); now != pid {
		t.Errorf("dockerd was restarted by policy off (pid %s, now %s)", pid, now)
	}
	h.MustRoot("test ! -e /etc/docker-tls && test ! -e /usr/local/lib/docker-tls && test ! -e /etc/systemd/system/docker-tls-authz.service && test -s /var/log/docker-tls/audit.log")
	if show := e.MustTLS("engine", "policy", "show", "pol").Stdout; !strings.Contains(show, "State:        off") {
		t.Errorf("policy show after off:\n%s", show)
	}
	if ls := e.MustTLS("engine", "ls", "--check").Stdout; !strings.Contains(ls, "REVOCATION LIST") || !strings.Contains(ls, "no policy") {
		t.Errorf("engine ls --check after policy off:\n%s", ls)
	}

	// On again, then teardown takes everything away, audit trail included.
	e.MustTLS("engine", "policy", "set", "pol", "--grant", "group:admins=admin", "--revoke-grant", "group:ops", "--crl-url", "none")
	refused("nobody", []string{"is revoked"}, "ps")
	refused("alice", []string{"is revoked"}, "ps")
	e.MustTLS("engine", "teardown", "pol")
	if after := h.MustRoot(hostFiles); after != pristine {
		t.Errorf("teardown did not leave the host as before setup:\nbefore:\n%s\nafter:\n%s", pristine, after)
	}
	h.MustRoot("test ! -e /var/log/docker-tls && test ! -e /run/docker/plugins/docker-tls.sock && docker ps -q")
}

// TestEnginePolicyFaults: the plugin is on every API call's path. Killed
// (kill -9) during a loop of 200 calls, it is restarted by systemd while
// calls wait on its socket: no call the policy refuses is let through,
// the allowed calls succeed again within 2 s, dockerd never exits, the
// host's own docker ps works after; the audit trail holds each refusal.
// Interactive and streaming calls work for the role allowed them.
func TestEnginePolicyFaults(t *testing.T) {
	t.Parallel() // own host
	e := NewEnv(t)
	c := NewSSHClient(t)
	h := StartEngineHosts(t, c, 1)[0]
	e.MustTLS("ca", "init")
	requireOK(t, setupEngine(e, c, h, "root", "--name", "flt", "--client-name", "admin-1", "--group", "admins",
		"--grant", "group:admins=admin", "--grant", "group:ops=operator", "--grant", "user:bob=viewer"))
	endpoint := strings.TrimSpace(e.MustTLS("ls", "--format", `{{if eq .Name "flt"}}{{.Host}}{{end}}`).Stdout)
	for _, id := range [][]string{{"alice", "--group", "ops"}, {"bob"}, {"nobody"}} {
		e.MustTLS(append([]string{"context", "create", id[0], "--host", endpoint, "--issue", "--client-name", id[0]}, id[1:]...)...)
	}
	busyboxImage(t, e, "flt")
	pid := strings.TrimSpace(h.MustRoot("systemctl show docker -p MainPID --value"))

	// Streaming and interactive calls, as the operator.
	requireOK(t, e.Docker("--context", "alice", "run", "-d", "--name", "streamer", "--network", "none", "busybox:local", "sh", "-c", "echo started; sleep 300"))
	if r := e.Run(strings.NewReader("hello\n"), "docker", "--context", "alice", "exec", "-i", "streamer", "sh", "-c", "read x; echo got $x"); r.Code != 0 || !strings.Contains(r.Stdout, "got hello") {
		t.Errorf("exec -i: %s", r)
	}
	if r := e.Docker("--context", "alice", "logs", "streamer"); !strings.Contains(r.Stdout, "started") {
		t.Errorf("logs: %s", r)
	}
	src := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(src, []byte("payload"), 0o644); err != nil {
		t.Fatal(err)
	}
	requireOK(t, e.Docker("--context", "alice", "cp", src, "streamer:/tmp/in.txt"))
	if r := e.Docker("--context", "alice", "exec", "streamer", "cat", "/tmp/in.txt"); r.Stdout != "payload" {
		t.Errorf("cp in, then cat: %s", r)
	}
	// The docker CLI sends --until in whole seconds, so "--until 0s" can end
	// before an event of this very second; a moment two seconds ahead holds
	// every event so far, and dockerd streams until then.
	until := strconv.FormatInt(time.Now().Unix()+2, 10)
	if r := e.Docker("--context", "alice", "events", "--since", "10m", "--until", until, "--filter", "container=streamer"); !strings.Contains(r.Stdout, "start") {
		t.Errorf("events: %s", r)
	}
	if r := e.Docker("--context", "bob", "exec", "streamer", "true"); r.Code == 0 || !strings.Contains(r.Stderr, "needs operator") {
		t.Errorf("a viewer's exec: %s", r)
	}

	// Kill -9 during 200 calls.
	type call struct {
		ok  bool
		at  time.Time
		who string
	}
	var calls []call
	var killed time.Time
	for i := range 200 {
		if i == 60 {
			h.MustRoot("systemctl kill -s KILL docker-tls-authz.service")
			killed = time.Now()
		}
		who := "bob"
		if i%2 == 1 {
			who = "nobody"
		}
		r := e.Docker("--context", who, "ps", "-q")
		calls = append(calls, call{ok: r.Code == 0, at: time.Now(), who: who})
	}
	var lastFail time.Time
	bobFailed, nobodyCalls := 0, 0
	for _, c := range calls {
		switch {
		case c.who == "nobody" && c.ok:
			t.Errorf("a call the policy refuses was let through at %s", c.at.Format(time.RFC3339Nano))
		case c.who == "nobody":
			nobodyCalls++
		case !c.ok:
			bobFailed++
			lastFail = c.at
		}
	}
	if bobFailed > 0 && lastFail.Sub(killed) > 2*time.Second {
		t.Errorf("allowed calls still failed %s after the kill (%d failed)", lastFail.Sub(killed), bobFailed)
	}
	window := "none failed: they waited on the socket"
	if bobFailed > 0 {
		window = fmt.Sprintf("the last %s after the kill", lastFail.Sub(killed).Round(time.Millisecond))
	}
	t.Logf("kill -9 of the plugin during 200 calls: %d of 100 allowed calls failed (%s); 0 refused calls let through", bobFailed, window)
	if now := strings.TrimSpace(h.MustRoot("systemctl show docker -p MainPID --value")); now != pid {
		t.Errorf("dockerd's pid changed from %s to %s", pid, now)
	}
	if n := strings.TrimSpace(h.MustRoot("systemctl show docker-tls-authz.service -p NRestarts --value")); n == "0" {
		t.Errorf("the plugin was not restarted (NRestarts %s)", n)
	}
	h.MustRoot("docker ps -q")
	denied := 0
	for _, line := range strings.Split(strings.TrimSpace(e.MustTLS("engine", "audit", "flt", "--denied", "--user", "nobody", "--format", "json").Stdout), "\n") {
		if strings.Contains(line, `"path":"/v1.41/containers/json"`) {
			denied++
		}
	}
	if denied != nobodyCalls {
		t.Errorf("the audit trail holds %d of nobody's %d refused calls", denied, nobodyCalls)
	}
}

// TestEnginePolicyCrash kills the laptop side of engine policy set and of
// policy off (SIGKILL, the crashtest build) at each of their steps. After
// each kill dockerd runs on with the same pid (a policy is only ever
// turned on and off by reloads) and the host's own docker ps works. Then
// either the same command, run again, finishes the job, or policy off
// takes it all away and leaves the host's files as after a policy set
// and off that were never interrupted.
func TestEnginePolicyCrash(t *testing.T) {
	t.Parallel() // own host; mostly waiting on reloads
	if crashBinary == "" {
		t.Skip("the crashtest build of docker-tls did not build")
	}
	e := NewEnv(t)
	c := NewSSHClient(t)
	h := StartEngineHosts(t, c, 1)[0]
	e.MustTLS("ca", "init")
	requireOK(t, setupEngine(e, c, h, "root", "--name", "crashp", "--client-name", "admin-1", "--group", "admins"))
	dockerdPID := func() string { return strings.TrimSpace(h.MustRoot("systemctl show docker -p MainPID --value")) }
	pid := dockerdPID()
	set := []string{"engine", "policy", "set", "crashp", "--grant", "group:admins=admin", "--grant", "user:bob=viewer"}
	off := []string{"engine", "policy", "off", "crashp"}
	policySteps := func(steps []string) []string {
		var out []string
		for _, s := range steps {
			if strings.HasPrefix(s, "engine-policy:") {
				out = append(out, s)
			}
		}
		return out
	}
	// The steps, as the crashtest build reports them on runs not killed;
	// the host after a set and an off is what every kill must come back to.
	_, steps := e.runCrash("", 0, set...)
	setSteps := policySteps(steps)
	_, steps = e.runCrash("", 0, off...)
	offSteps := policySteps(steps)
	if len(setSteps) < 3 || len(offSteps) < 1 {
		t.Fatalf("too few policy steps seen: set %v, off %v", setSteps, offSteps)
	}
	clean := h.MustRoot(hostFiles)

	alive := func(when string) {
		t.Helper()
		if now := dockerdPID(); now != pid {
			t.Fatalf("%s: dockerd was restarted (pid %s, now %s)", when, pid, now)
		}
		if out, err := h.Root("docker ps -q"); err != nil {
			t.Fatalf("%s: the host's own docker ps: %v\n%s", when, err, out)
		}
		requireOK(t, e.Docker("--context", "crashp", "version"))
	}
	offAndClean := func(when string) {
		t.Helper()
		requireOK(t, e.TLS(off...))
		alive(when + ", then policy off")
		if now := h.MustRoot(hostFiles); now != clean {
			t.Fatalf("%s, then policy off: the host is not as after an uninterrupted set and off:\nwant:\n%s\ngot:\n%s", when, clean, now)
		}
	}
	for i, step := range setSteps {
		when := "policy set killed at " + step
		if killed, _ := e.runCrash(step, 0, set...); !killed {
			t.Fatalf("policy set was not killed at %s", step)
		}
		alive(when)
		if i%2 == 0 {
			requireOK(t, e.TLS(set...))
			alive(when + ", then set again")
			if show := e.MustTLS("engine", "policy", "show", "crashp").Stdout; !strings.Contains(show, "State:        enforced") || !strings.Contains(show, "user:bob") {
				t.Fatalf("%s, then set again: not enforced:\n%s", when, show)
			}
			h.MustRoot("test ! -e /var/lib/docker-tls/policy-pending && test ! -e /var/lib/docker-tls/policy-previous")
		}
		offAndClean(when)
	}
	for _, step := range offSteps {
		when := "policy off killed at " + step
		requireOK(t, e.TLS(set...))
		if killed, _ := e.runCrash(step, 0, off...); !killed {
			t.Fatalf("policy off was not killed at %s", step)
		}
		alive(when)
		offAndClean(when)
	}
	t.Logf("policy set killed at %v, policy off at %v; dockerd kept pid %s throughout", setSteps, offSteps, pid)
}
