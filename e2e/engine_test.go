package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestEngineHosts checks the harness itself: a booted host runs systemd,
// sshd and Debian's dockerd, takes the three kinds of login the engine
// tests use, and cannot reach anything but this machine.
func TestEngineHosts(t *testing.T) {
	c := NewSSHClient(t)
	h := StartEngineHosts(t, c, 1)[0]

	if out := h.MustRoot("ps -p 1 -o comm="); strings.TrimSpace(out) != "systemd" {
		t.Errorf("PID 1 is %q, want systemd", out)
	}
	if out := h.MustRoot("systemctl show docker -p ExecStart --value"); !strings.Contains(out, "-H fd://") {
		t.Errorf("docker.service is not Debian's (ExecStart %q)", out)
	}
	if out := h.MustRoot("docker info --format '{{.ServerVersion}}'"); strings.TrimSpace(out) == "" {
		t.Error("dockerd answers no version")
	}
	if out, err := h.As("deploy", "sudo -n id -u", nil); err != nil || strings.TrimSpace(out) != "0" {
		t.Errorf("deploy: sudo -n id -u = %q, %v; want 0", out, err)
	}
	if out, err := h.As("asker", "sudo -n id -u", nil); err == nil || !strings.Contains(out, "password") {
		t.Errorf("asker: sudo -n should want a password, got %q, %v", out, err)
	}
	if out := h.MustRoot("ip route"); strings.Contains(out, "default") {
		t.Errorf("the host has a default route, traffic could leave:\n%s", out)
	}
}

// setupEngine runs engine setup against h as user and returns the result.
func setupEngine(e *Env, c *SSHClient, h *EngineHost, user string, args ...string) Result {
	e.t.Helper()
	return e.TLS(append([]string{"engine", "setup", user + "@" + h.Addr, "--ssh-config", c.Config}, args...)...)
}

// TestEngineSetupFreshHost: a host with Debian's docker.io as installed,
// set up as root in one command; the docker CLI then runs a container on
// it through the new context; a second run changes nothing.
func TestEngineSetupFreshHost(t *testing.T) {
	t.Parallel() // own hosts; mostly waiting on restarts
	e := NewEnv(t)
	c := NewSSHClient(t)
	h := StartEngineHosts(t, c, 1)[0]
	e.MustTLS("ca", "init")
	// Every ssh command line docker tls runs is logged by a wrapper, to
	// show that no secret travels in argv (where other users can read it).
	wrapDir := filepath.Join(e.Dir, "wrap")
	argvLog := filepath.Join(e.Dir, "ssh-argv.log")
	if err := os.MkdirAll(wrapDir, 0o700); err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\nprintf '%s\\n' \"$*\" >>" + argvLog + "\nexec /usr/bin/ssh \"$@\"\n"
	if err := os.WriteFile(filepath.Join(wrapDir, "ssh"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	e.Setenv("PATH", wrapDir+":"+os.Getenv("PATH"))

	// --dry-run shows the plan and touches nothing.
	dry := setupEngine(e, c, h, "root", "--name", "fresh", "--dry-run")
	requireOK(t, dry)
	for _, want := range []string{"options go in the systemd drop-in", "issue a server certificate for", "restart dockerd", "create context fresh", "Dry run: nothing was changed"} {
		if !strings.Contains(dry.Stdout, want) {
			t.Errorf("--dry-run should say %q:\n%s", want, dry)
		}
	}
	if out := h.MustRoot("ls /var/lib/docker-tls /etc/docker/tls /etc/systemd/system/docker.service.d 2>&1 | grep -c 'No such file'"); strings.TrimSpace(out) != "3" {
		t.Errorf("--dry-run changed the host: %s", out)
	}
	if ls := e.MustTLS("engine", "ls", "-q"); ls.Stdout != "" {
		t.Errorf("--dry-run recorded an engine: %q", ls.Stdout)
	}

	r := setupEngine(e, c, h, "root", "--name", "fresh")
	requireOK(t, r)
	t.Logf("setup:\n%s", r.Stdout)
	// The server key exists only on the host, and was never printed nor
	// in any ssh argv, even base64-encoded.
	argv, err := os.ReadFile(argvLog)
	if err != nil || !strings.Contains(string(argv), h.Addr) {
		t.Fatalf("the ssh wrapper logged nothing: %v", err)
	}
	keyPEM := h.MustRoot("cat /etc/docker/tls/server-key.pem")
	der := strings.Join(strings.Split(strings.TrimSpace(keyPEM), "\n")[1:len(strings.Split(strings.TrimSpace(keyPEM), "\n"))-1], "")
	for _, l := range strings.Split(keyPEM, "\n") {
		if len(l) > 20 && !strings.HasPrefix(l, "-----") && (strings.Contains(r.Stdout, l) || strings.Contains(r.Stderr, l)) {
			t.Fatalf("setup printed the server key")
		}
	}
	// Scripts travel base64-encoded in argv: decode every such run too.
	// (Three levels: a file's contents inside a script inside argv would
	// be base64 twice.)
	seen, layer := string(argv), string(argv)
	for range 3 {
		next := ""
		for _, blob := range regexp.MustCompile(`[A-Za-z0-9+/]{40,}={0,2}`).FindAllString(layer, -1) {
			if dec, err := base64.StdEncoding.DecodeString(blob[:len(blob)/4*4]); err == nil {
				next += "\n" + string(dec)
			}
		}
		seen, layer = seen+next, next
	}
	if !strings.Contains(seen, "systemctl") {
		t.Fatalf("the decoded ssh argv has no scripts: the check cannot see them")
	}
	if strings.Contains(seen, der[:24]) || strings.Contains(seen, "PRIVATE KEY") {
		t.Fatalf("the server key went through ssh's argv")
	}
	if !strings.Contains(r.Stdout, "docker context use fresh") {
		t.Errorf("setup should say how to use the context:\n%s", r)
	}
	// The real docker CLI, through the context, runs a container there.
	busyboxImage(t, e, "fresh")
	run := e.Docker("--context", "fresh", "run", "--rm", "--network", "none", "busybox:local", "echo", "hello from the engine")
	requireOK(t, run)
	if !strings.Contains(run.Stdout, "hello from the engine") {
		t.Errorf("container output: %s", run)
	}
	// What the host has now: our drop-in, the key 0600 root, and the
	// unit's own flags kept.
	if out := h.MustRoot("systemctl show docker -p ExecStart --value"); !strings.Contains(out, "-H fd://") || !strings.Contains(out, "--tlsverify") || !strings.Contains(out, "--containerd=") {
		t.Errorf("ExecStart should keep the unit's flags and add TLS:\n%s", out)
	}
	if out := strings.TrimSpace(h.MustRoot("stat -c '%a %U' /etc/docker/tls/server-key.pem")); out != "600 root" {
		t.Errorf("server-key.pem: %s, want 600 root", out)
	}
	// A client without a certificate, and plain HTTP, are refused.
	plain := e.Run(nil, "curl", "-sS", "--max-time", "5", "http://"+h.Addr+":2376/_ping")
	if plain.Code == 0 && strings.Contains(plain.Stdout, "OK") {
		t.Errorf("plain HTTP was served:\n%s", plain)
	}
	noCert := e.Run(nil, "curl", "-sS", "--max-time", "5", "--cacert", e.Path("docker-config", "contexts"), "-k", "https://"+h.Addr+":2376/_ping")
	if noCert.Code == 0 && strings.Contains(noCert.Stdout, "OK") {
		t.Errorf("a client without a certificate was served:\n%s", noCert)
	}
	// The engine is listed.
	ls := e.MustTLS("engine", "ls", "--format", "{{.Name}} {{.Dest}} {{.Context}} {{.Mode}}")
	if want := "fresh ssh://root@" + h.Addr + " fresh systemd drop-in"; strings.TrimSpace(ls.Stdout) != want {
		t.Errorf("engine ls = %q, want %q", ls.Stdout, want)
	}

	// Again: nothing to do, no restart.
	pid := h.MustRoot("systemctl show docker -p MainPID --value")
	again := setupEngine(e, c, h, "root", "--name", "fresh")
	requireOK(t, again)
	if !strings.Contains(again.Stdout, "nothing changed") {
		t.Errorf("a second run should change nothing:\n%s", again)
	}
	if now := h.MustRoot("systemctl show docker -p MainPID --value"); now != pid {
		t.Errorf("a second run restarted dockerd (pid %s -> %s)", pid, now)
	}
	// Another CA: refused without --force (the context's certificate is
	// from the first one), moved with it.
	e.MustTLS("ca", "init", "second")
	requireFail(t, setupEngine(e, c, h, "root", "--name", "fresh", "--ca", "second"), `was set up with CA "default", not this CA "second"`, "--force")
	requireOK(t, setupEngine(e, c, h, "root", "--name", "fresh", "--ca", "second", "--force"))
	requireOK(t, e.Docker("--context", "fresh", "version"))
	if ls := e.MustTLS("engine", "ls", "--format", "{{.CA}}"); strings.TrimSpace(ls.Stdout) != "second" {
		t.Errorf("engine ls after moving CA: %q", ls.Stdout)
	}

	// --force re-issues the server certificate and the context's.
	serial := e.MustTLS("engine", "ls", "--format", "{{.Serial}}").Stdout
	requireOK(t, setupEngine(e, c, h, "root", "--name", "fresh", "--force"))
	if again := e.MustTLS("engine", "ls", "--format", "{{.Serial}}").Stdout; again == serial {
		t.Errorf("--force kept serial %s", serial)
	}
	requireOK(t, e.Docker("--context", "fresh", "version"))

	// Renewed for 20 days: a server certificate within 30 days of its end
	// is mentioned by ls
	// and, for the current context, by every command.
	requireOK(t, e.TLS("engine", "renew", "fresh", "--days", "20"))
	if ls := e.MustTLS("ls"); !strings.Contains(ls.Stderr, "server certificate of engine fresh expires in") || !strings.Contains(ls.Stderr, "docker tls engine renew fresh") {
		t.Errorf("ls should warn about the engine's server certificate:\n%s", ls)
	}
	requireOK(t, e.Docker("context", "use", "fresh"))
	if v := e.MustTLS("ca", "ls"); !strings.Contains(v.Stderr, "docker tls engine renew fresh") {
		t.Errorf("a command with the engine's context current should warn:\n%s", v)
	}

}

// TestEngineSetupHosts: the ways a host can differ. A sudo user; a user
// whose sudo wants a password; an unknown host key; a daemon.json that
// lists "hosts" (options go there); a drop-in of the host's own that
// replaces ExecStart (kept, restated in ours).
func TestEngineSetupHosts(t *testing.T) {
	t.Parallel() // own hosts; mostly waiting on restarts
	e := NewEnv(t)
	c := NewSSHClient(t)
	hosts := StartEngineHosts(t, c, 3)
	e.MustTLS("ca", "init")

	t.Run("sudo user", func(t *testing.T) {
		h := hosts[0]
		r := setupEngine(e, c, h, "deploy", "--name", "viasudo")
		requireOK(t, r)
		requireOK(t, e.Docker("--context", "viasudo", "version"))
	})
	t.Run("an agent-mode context for the same engine", func(t *testing.T) {
		RequireKeyring(t)
		h := hosts[0]
		pid := h.MustRoot("systemctl show docker -p MainPID --value")
		r := setupEngine(e, c, h, "root", "--name", "viaagent", "--agent")
		requireOK(t, r)
		if now := h.MustRoot("systemctl show docker -p MainPID --value"); now != pid {
			t.Errorf("a second context for a set-up engine restarted dockerd")
		}
		ep := e.Docker("context", "inspect", "viaagent", "--format", "{{.Endpoints.docker.Host}} {{len .TLSMaterial}}")
		if !strings.HasPrefix(ep.Stdout, "unix://") || !strings.HasSuffix(strings.TrimSpace(ep.Stdout), " 0") {
			t.Fatalf("agent-mode context: %s", ep)
		}
		e.MustTLS("agent")
		t.Cleanup(func() { e.TLS("agent", "stop") })
		requireOK(t, e.Docker("--context", "viaagent", "version"))
	})
	t.Run("sudo asks for a password", func(t *testing.T) {
		r := setupEngine(e, c, hosts[1], "asker", "--name", "asker")
		requireFail(t, r, "asker on "+hosts[1].Addr+" needs a password for sudo", "NOPASSWD")
		if r := e.Docker("context", "inspect", "asker"); r.Code == 0 {
			t.Error("a context was created")
		}
	})
	t.Run("unknown host key", func(t *testing.T) {
		other := NewSSHClient(t) // knows no host
		r := setupEngine(e, other, hosts[1], "root", "--name", "unknown")
		requireFail(t, r, "is not in known_hosts", "SHA256:", "StrictHostKeyChecking=accept-new")
		if out := hosts[1].MustRoot("ls /var/lib/docker-tls 2>&1 || true"); !strings.Contains(out, "No such file") {
			t.Errorf("something was changed on the host: %s", out)
		}
	})
	t.Run("daemon.json with hosts", func(t *testing.T) {
		h := hosts[1]
		h.MustRoot(`mkdir -p /etc/systemd/system/docker.service.d /etc/docker
printf '[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock\n' >/etc/systemd/system/docker.service.d/hosts.conf
printf '{\n  "hosts": ["unix:///var/run/docker.sock"],\n  "log-level": "warn"\n}\n' >/etc/docker/daemon.json
systemctl daemon-reload && systemctl restart docker && docker version >/dev/null`)
		r := setupEngine(e, c, h, "root", "--name", "viajson")
		requireOK(t, r)
		if !strings.Contains(r.Stdout, "options go in the daemon.json") {
			t.Errorf("setup should use daemon.json:\n%s", r)
		}
		requireOK(t, e.Docker("--context", "viajson", "version"))
		dj := h.MustRoot("cat /etc/docker/daemon.json")
		for _, want := range []string{`"unix:///var/run/docker.sock"`, `"tcp://0.0.0.0:2376"`, `"log-level": "warn"`, `"tlskey": "/etc/docker/tls/server-key.pem"`} {
			if !strings.Contains(dj, want) {
				t.Errorf("daemon.json lacks %s:\n%s", want, dj)
			}
		}
		if out := h.MustRoot("ls /etc/systemd/system/docker.service.d/"); strings.Contains(out, "docker-tls.conf") {
			t.Errorf("a drop-in was written too: %s", out)
		}
	})
	t.Run("a drop-in of its own", func(t *testing.T) {
		h := hosts[2]
		h.MustRoot(`mkdir -p /etc/systemd/system/docker.service.d
printf '[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock --log-level=warn\n' >/etc/systemd/system/docker.service.d/10-mine.conf
systemctl daemon-reload && systemctl restart docker && docker version >/dev/null`)
		r := setupEngine(e, c, h, "root", "--name", "owndropin")
		requireOK(t, r)
		requireOK(t, e.Docker("--context", "owndropin", "version"))
		if out := h.MustRoot("systemctl show docker -p ExecStart --value"); !strings.Contains(out, "--log-level=warn") || !strings.Contains(out, "--tlsverify") {
			t.Errorf("ExecStart should keep the host's own flags:\n%s", out)
		}
		// A later drop-in that overrides ExecStart is refused, with its line.
		h.MustRoot(`printf '[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd://\n' >/etc/systemd/system/docker.service.d/zz-late.conf; systemctl daemon-reload`)
		late := setupEngine(e, c, h, "root", "--name", "owndropin", "--force")
		requireFail(t, late, "/etc/systemd/system/docker.service.d/zz-late.conf line 2", "comes after docker-tls.conf")
	})
}

// hostContainer imports busybox on the host (over ssh, as root) and starts
// a long-running container; it returns the container's ID and start time.
func hostContainer(t *testing.T, h *EngineHost) (id, started string) {
	t.Helper()
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("busybox-static is not installed (apt-get install busybox-static)")
	}
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	_ = tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	_ = tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(data))})
	_, _ = tw.Write(data)
	for _, c := range []string{"sh", "sleep", "echo"} {
		_ = tw.WriteHeader(&tar.Header{Name: "bin/" + c, Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	}
	_ = tw.Close()
	if out, err := h.As("root", "docker import - busybox:local >/dev/null", tarball.Bytes()); err != nil {
		t.Fatalf("docker import on %s: %v\n%s", h.Name, err, out)
	}
	id = strings.TrimSpace(h.MustRoot("docker run -d --name keep --network none busybox:local sleep 3600"))
	return id, strings.TrimSpace(h.MustRoot("docker inspect -f '{{.State.StartedAt}}' keep"))
}

// TestEngineSetupRestartSafety: a running container survives setup (live-
// restore switched on by a reload first: same ID, same start time), and a
// restart that does not lead to a TLS engine (a firewall on the port) is
// rolled back: every file as it was, dockerd serving as before.
func TestEngineSetupRestartSafety(t *testing.T) {
	t.Parallel() // own hosts; mostly waiting on restarts
	e := NewEnv(t)
	c := NewSSHClient(t)
	hosts := StartEngineHosts(t, c, 2)
	e.MustTLS("ca", "init")

	t.Run("a running container keeps running", func(t *testing.T) {
		h := hosts[0]
		id, started := hostContainer(t, h)
		r := setupEngine(e, c, h, "root", "--name", "busy")
		requireOK(t, r)
		if !strings.Contains(r.Stdout, "switch live-restore on first") {
			t.Errorf("setup should say it switches live-restore on first:\n%s", r)
		}
		got := e.Docker("--context", "busy", "inspect", "-f", "{{.Id}} {{.State.Running}} {{.State.StartedAt}}", "keep")
		requireOK(t, got)
		if want := id + " true " + started; strings.TrimSpace(got.Stdout) != want {
			t.Errorf("container after setup: %q, want %q", got.Stdout, want)
		}
	})
	t.Run("a failed restart is rolled back", func(t *testing.T) {
		h := hosts[1]
		id, started := hostContainer(t, h)
		snapshot := "for f in /etc/docker/daemon.json /etc/systemd/system/docker.service.d /etc/docker/tls /var/lib/docker-tls; do ls -la $f 2>&1; cat $f 2>&1; done; systemctl cat docker"
		before := h.MustRoot(snapshot)
		// The engine comes up, but nothing from outside reaches its port.
		h.MustRoot("iptables -I INPUT -p tcp --dport 2376 -j REJECT --reject-with tcp-reset")
		r := setupEngine(e, c, h, "root", "--name", "walled", "--wait", "3s")
		requireFail(t, r, "the check from here failed", "every file changed was put back", "last lines of dockerd's journal")
		if after := h.MustRoot(snapshot); after != before {
			t.Errorf("the host was not put back as it was:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if out := h.MustRoot("systemctl is-active docker; docker inspect -f '{{.Id}} {{.State.Running}} {{.State.StartedAt}}' keep"); out != "active\n"+id+" true "+started+"\n" {
			t.Errorf("dockerd and the container after the rollback: %q", out)
		}
		if r := e.Docker("context", "inspect", "walled"); r.Code == 0 {
			t.Error("a context was created for an engine that failed")
		}
	})
}

// hostSnapshot is every file and directory engine setup may touch, with
// contents, and the unit as systemd sees it.
const hostSnapshot = "ls -A /etc; for f in /etc/docker /etc/docker/daemon.json /etc/systemd/system/docker.service.d /etc/docker/tls /var/lib/docker-tls; do ls -lA --time-style=+ $f 2>&1; cat $f 2>&1; done; systemctl cat docker"

// TestEngineRenewAndTeardown: renew --all over three engines at once
// (restart safety kept), --within skips what is not due, and teardown puts
// each host back byte for byte.
func TestEngineRenewAndTeardown(t *testing.T) {
	t.Parallel() // own hosts; mostly waiting on restarts
	e := NewEnv(t)
	c := NewSSHClient(t)
	hosts := StartEngineHosts(t, c, 3)
	e.MustTLS("ca", "init")
	id, started := hostContainer(t, hosts[0])
	before := make([]string, len(hosts))
	for i, h := range hosts {
		before[i] = h.MustRoot(hostSnapshot)
		requireOK(t, setupEngine(e, c, h, "root", "--name", fmt.Sprintf("r%d", i)))
	}
	serials := e.MustTLS("engine", "ls", "--format", "{{.Serial}}").Stdout

	r := e.MustTLS("engine", "renew", "--all")
	if n := strings.Count(r.Stdout, ": renewed, serial"); n != 3 {
		t.Fatalf("renew --all renewed %d engines, want 3:\n%s", n, r)
	}
	after := e.MustTLS("engine", "ls", "--format", "{{.Serial}}").Stdout
	for _, s := range strings.Fields(serials) {
		if strings.Contains(after, s) {
			t.Errorf("serial %s is still recorded after renew:\n%s", s, after)
		}
	}
	for i, h := range hosts {
		requireOK(t, e.Docker("--context", fmt.Sprintf("r%d", i), "version"))
		state := h.MustRoot("cat /var/lib/docker-tls/state.json")
		if !strings.Contains(after, strings.Trim(strings.SplitN(strings.SplitN(state, `"serial": "`, 2)[1], `"`, 2)[0], " ")) {
			t.Errorf("%s serves a serial the record does not have:\n%s\n%s", h.Name, state, after)
		}
	}
	check := e.MustTLS("engine", "ls", "--check", "--format", "{{.Name}} {{.Reachable}} {{.Served}}")
	if want := "r0 yes recorded\nr1 yes recorded\nr2 yes recorded\n"; check.Stdout != want {
		t.Errorf("engine ls --check after renew:\n%s\nwant:\n%s", check.Stdout, want)
	}
	got := e.Docker("--context", "r0", "inspect", "-f", "{{.Id}} {{.State.Running}} {{.State.StartedAt}}", "keep")
	if want := id + " true " + started; strings.TrimSpace(got.Stdout) != want {
		t.Errorf("container after renew: %q, want %q", got.Stdout, want)
	}

	// Not due: nothing restarts.
	pid := hosts[1].MustRoot("systemctl show docker -p MainPID --value")
	r = e.MustTLS("engine", "renew", "--all", "--within", "30d")
	if n := strings.Count(r.Stdout, "not due"); n != 3 {
		t.Errorf("renew --within 30d should find nothing due:\n%s", r)
	}
	if now := hosts[1].MustRoot("systemctl show docker -p MainPID --value"); now != pid {
		t.Errorf("renew of nothing due restarted dockerd")
	}

	// Teardown: every byte as before setup, the port closed, the context gone.
	requireOK(t, e.TLS("engine", "teardown", "r1"))
	if now := hosts[1].MustRoot(hostSnapshot); now != before[1] {
		t.Errorf("teardown did not restore the host:\nbefore setup:\n%s\nafter teardown:\n%s", before[1], now)
	}
	if r := e.Docker("context", "inspect", "r1"); r.Code == 0 {
		t.Error("teardown left the context")
	}
	if r := e.Run(nil, "curl", "-sS", "--max-time", "3", "-k", "https://"+hosts[1].Addr+":2376/_ping"); r.Code != 7 {
		t.Errorf("port 2376 should be closed after teardown: %s", r)
	}
	// With --keep-context, the container keeps running through teardown.
	requireOK(t, e.TLS("engine", "teardown", "r0", "--keep-context"))
	if now := hosts[0].MustRoot(hostSnapshot); now != before[0] {
		t.Errorf("teardown did not restore the host:\nbefore setup:\n%s\nafter teardown:\n%s", before[0], now)
	}
	requireOK(t, e.Docker("context", "inspect", "r0"))
	if out := hosts[0].MustRoot("docker inspect -f '{{.Id}} {{.State.Running}} {{.State.StartedAt}}' keep"); strings.TrimSpace(out) != id+" true "+started {
		t.Errorf("container after teardown: %q", out)
	}
	if ls := e.MustTLS("engine", "ls", "-q").Stdout; strings.TrimSpace(ls) != "r2" {
		t.Errorf("engine ls after two teardowns: %q", ls)
	}
}

// TestEngineSetupCrash kills the laptop side of engine setup (SIGKILL, the
// crashtest build) at each of its steps, then either runs setup again,
// which must finish the job, or tears the engine down, which must put the
// host back byte for byte. A container on the host runs throughout.
func TestEngineSetupCrash(t *testing.T) {
	t.Parallel() // own hosts; mostly waiting on restarts
	e := NewEnv(t)
	c := NewSSHClient(t)
	h := StartEngineHosts(t, c, 1)[0]
	e.MustTLS("ca", "init")
	id, started := hostContainer(t, h)
	before := h.MustRoot(hostSnapshot)
	args := []string{"engine", "setup", "root@" + h.Addr, "--ssh-config", c.Config, "--name", "crashy"}

	// The steps, as the crashtest build reports them on a run not killed.
	_, steps := e.runCrash("", 0, args...)
	requireOK(t, e.TLS("engine", "teardown", "crashy"))

	var engineSteps []string
	for _, s := range steps {
		if strings.HasPrefix(s, "engine-") {
			engineSteps = append(engineSteps, s)
		}
	}
	if len(engineSteps) < 6 {
		t.Fatalf("too few engine steps seen: %v", steps)
	}
	for i, step := range engineSteps {
		if killed, _ := e.runCrash(step, 0, args...); !killed {
			t.Fatalf("setup was not killed at %s", step)
		}
		if ls := e.MustTLS("engine", "ls", "--format", "{{.Name}} {{.Status}}"); !strings.Contains(ls.Stdout, "crashy") {
			t.Errorf("killed at %s: the engine is not listed: %q", step, ls.Stdout)
		}
		if i%2 == 0 {
			r := e.TLS(args...)
			requireOK(t, r)
			requireOK(t, e.Docker("--context", "crashy", "version"))
			if ls := e.MustTLS("engine", "ls", "--format", "{{.Status}}"); strings.TrimSpace(ls.Stdout) != "ready" {
				t.Errorf("killed at %s, run again: status %q", step, ls.Stdout)
			}
		}
		requireOK(t, e.TLS("engine", "teardown", "crashy"))
		if now := h.MustRoot(hostSnapshot); now != before {
			t.Fatalf("killed at %s, then teardown: the host is not as before:\nbefore:\n%s\nafter:\n%s", step, before, now)
		}
		if out := h.MustRoot("docker inspect -f '{{.Id}} {{.State.Running}} {{.State.StartedAt}}' keep"); strings.TrimSpace(out) != id+" true "+started {
			t.Fatalf("killed at %s: container %q", step, out)
		}
		if out := h.MustRoot("pgrep -c sshd"); strings.TrimSpace(out) == "" {
			t.Fatal("no sshd")
		}
	}
	// No ssh master to this host outlives the process that started it
	// (other tests' masters, to other hosts, may be running).
	// A master ends asynchronously after its parent's death signal or
	// "-O exit": allow it five seconds.
	masters := func() []byte {
		out, _ := exec.Command("pgrep", "-f", "dtls-ssh-.* -M .*-- "+regexp.QuoteMeta(h.Addr)+"( |$)").Output()
		return bytes.TrimSpace(out)
	}
	for deadline := time.Now().Add(5 * time.Second); len(masters()) > 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
	}
	if out := masters(); len(out) > 0 {
		t.Errorf("ssh masters left running: %s", out)
	}
}

// hostFiles is every file, directory and link under the places a setup
// could write to (and a few it never should), with owner, mode and a hash
// of each file's bytes.
const hostFiles = `for d in /etc /var/lib/docker-tls /usr/local /root /opt; do
  [ -e "$d" ] || { echo "$d absent"; continue; }
  find "$d" -xdev -printf '%p %m %u:%g %y %l\n' | sort
  find "$d" -xdev -type f -exec sha256sum {} + | sort -k 2
done`

// TestEngineRefusesFailedDockerd: a host whose dockerd cannot start (a
// daemon.json that parses but holds an option dockerd does not know) is
// refused by engine setup and engine renew before anything is written,
// with the unit's state and dockerd's own error line; a masked unit is
// called masked; a dockerd that is merely stopped is set up.
func TestEngineRefusesFailedDockerd(t *testing.T) {
	t.Parallel() // own host; mostly waiting on restarts
	e := NewEnv(t)
	c := NewSSHClient(t)
	h := StartEngineHosts(t, c, 1)[0]
	e.MustTLS("ca", "init")
	breakDockerd := func() {
		t.Helper()
		h.MustRoot(`printf '{"no-such-option": true}\n' >/etc/docker/daemon.json; systemctl restart docker.service 2>/dev/null || true`)
		// systemd restarts it twice more (Debian's Restart=always,
		// StartLimitBurst=3), then gives up: failed.
		h.MustRoot(`for i in $(seq 1 150); do [ "$(systemctl is-active docker.service)" = failed ] && exit 0; sleep 0.2; done; systemctl status docker.service; exit 1`)
	}
	const cause = "the following directives don't match any configuration option: no-such-option"

	t.Run("setup", func(t *testing.T) {
		breakDockerd()
		before := h.MustRoot(hostFiles)
		if !strings.Contains(before, "/var/lib/docker-tls absent") {
			t.Fatalf("the fresh host already has /var/lib/docker-tls:\n%s", before)
		}
		r := setupEngine(e, c, h, "root", "--name", "broken")
		requireFail(t, r, "dockerd on the host has failed (docker.service failed/failed, exit-code)", cause, "nothing was changed", "fix the host", "run this again")
		if lines := strings.Split(strings.TrimSpace(r.Stderr), "\n"); len(lines) != 1 {
			t.Errorf("the refusal should be one sentence on one line:\n%s", r.Stderr)
		}
		if after := h.MustRoot(hostFiles); after != before {
			t.Errorf("the refused setup changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if r := e.Docker("context", "inspect", "broken"); r.Code == 0 {
			t.Error("a context was created for a refused engine")
		}
		if ls := e.MustTLS("engine", "ls", "-q"); strings.TrimSpace(ls.Stdout) != "" {
			t.Errorf("a refused engine is recorded: %q", ls.Stdout)
		}
	})

	t.Run("masked", func(t *testing.T) {
		h.MustRoot("systemctl mask docker.service")
		before := h.MustRoot(hostFiles)
		r := setupEngine(e, c, h, "root", "--name", "broken")
		requireFail(t, r, "docker.service is masked on the host", "systemctl unmask docker.service")
		if after := h.MustRoot(hostFiles); after != before {
			t.Errorf("the refused setup changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		h.MustRoot("systemctl unmask docker.service && rm /etc/docker/daemon.json && systemctl reset-failed docker.service")
	})

	t.Run("stopped is set up", func(t *testing.T) {
		// Stopped with its socket, so nothing starts it before the setup.
		h.MustRoot("systemctl stop docker.socket docker.service; systemctl is-active docker.service || true")
		r := setupEngine(e, c, h, "root", "--name", "fixed")
		requireOK(t, r)
		if !strings.Contains(r.Stdout, "(not running)") {
			t.Errorf("setup should have seen dockerd stopped:\n%s", r)
		}
		requireOK(t, e.Docker("--context", "fixed", "version"))
	})

	t.Run("renew", func(t *testing.T) {
		breakDockerd()
		before := h.MustRoot(hostFiles)
		r := e.TLS("engine", "renew", "fixed")
		requireFail(t, r, "not renewed")
		if !strings.Contains(r.Stderr, "fixed: FAILED: dockerd on the host has failed") || !strings.Contains(r.Stderr, cause) {
			t.Errorf("renew should name the state and the cause:\n%s", r)
		}
		if after := h.MustRoot(hostFiles); after != before {
			t.Errorf("the refused renew changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}
