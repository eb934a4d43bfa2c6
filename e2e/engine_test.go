package e2e

import (
	"strings"
	"testing"
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
	e := NewEnv(t)
	c := NewSSHClient(t)
	h := StartEngineHosts(t, c, 1)[0]
	e.MustTLS("ca", "init")
	r := setupEngine(e, c, h, "root", "--name", "fresh")
	requireOK(t, r)
	t.Logf("setup:\n%s", r.Stdout)
	// The server key exists only on the host, and was never printed.
	for _, l := range strings.Split(h.MustRoot("cat /etc/docker/tls/server-key.pem"), "\n") {
		if len(l) > 20 && !strings.HasPrefix(l, "-----") && (strings.Contains(r.Stdout, l) || strings.Contains(r.Stderr, l)) {
			t.Fatalf("setup printed the server key")
		}
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
}
