package e2e

// Engine hosts for the engine tests: real Debian machines with systemd,
// sshd and docker.io, each in a network namespace of the test's own
// (internal/enginehost). The root file system is built once per run.

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/docker-tls/docker-tls/internal/enginehost"
)

// SSHClient is this machine's ssh key and config for the hosts.
type SSHClient = enginehost.Client

// EngineHost is a booted host, stopped when its test ends.
type EngineHost struct {
	*enginehost.Host
	t testing.TB
}

var rootfsOnce = sync.OnceValues(func() (string, error) { return enginehost.BuildRootfs("../scripts/engine-rootfs.sh") })

// needEngineHosts skips the test where engine hosts cannot be made, or
// fails it when DOCKER_TLS_TEST_REQUIRE_ENGINES=1 (CI).
func needEngineHosts(t testing.TB) {
	t.Helper()
	missing := enginehost.Missing()
	if len(missing) == 0 {
		return
	}
	msg := "engine hosts need " + strings.Join(missing, ", ") + " (run as root after scripts/deps.sh)"
	if os.Getenv("DOCKER_TLS_TEST_REQUIRE_ENGINES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// NewSSHClient makes an ssh key and config in the test's temp dir.
func NewSSHClient(t testing.TB) *SSHClient {
	t.Helper()
	c, err := enginehost.NewClient(filepath.Join(t.TempDir(), "ssh"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// StartEngineHosts boots n hosts in parallel, trusted by c, and stops them
// (by pid, with their namespaces, veths and cgroups) when the test ends,
// failed or not.
func StartEngineHosts(t testing.TB, c *SSHClient, n int) []*EngineHost {
	t.Helper()
	needEngineHosts(t)
	rootfs, err := rootfsOnce()
	if err != nil {
		t.Fatalf("engine host root file system: %v", err)
	}
	hosts, err := enginehost.Start(rootfs, c, n)
	out := make([]*EngineHost, len(hosts))
	for i, h := range hosts {
		out[i] = &EngineHost{Host: h, t: t}
		t.Cleanup(func() {
			if err := h.Stop(); err != nil {
				t.Error(err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// MustRoot runs a shell command as root on the host, failing the test on
// error.
func (h *EngineHost) MustRoot(command string) string {
	h.t.Helper()
	out, err := h.Root(command)
	if err != nil {
		h.t.Fatalf("%s: %s: %v\n%s", h.Name, command, err, out)
	}
	return out
}
