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
