package enginehost

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadiness(t *testing.T) {
	for _, tc := range []struct {
		name  string
		out   string
		ready bool
		say   string
	}{
		{"both active and answering", "ssh=active\ndocker=active\napi=20.10.24+dfsg1\n", true, "ssh active, docker active, dockerd 20.10.24+dfsg1 answers"},
		// systemctl is-active ssh docker exits 0 here: the old check's bug.
		{"docker failed", "ssh=active\ndocker=failed\napi=\n", false, "ssh active, docker failed, dockerd does not answer"},
		{"docker restarting", "ssh=active\ndocker=activating\napi=\n", false, "docker activating"},
		{"active but not answering yet", "ssh=active\ndocker=active\napi=\n", false, "dockerd does not answer"},
		{"ssh not yet", "ssh=inactive\ndocker=active\napi=20.10.24\n", false, "ssh inactive"},
		{"nothing", "", false, "ssh unknown, docker unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := parseReadiness(tc.out)
			if r.ready() != tc.ready {
				t.Errorf("ready() = %v, want %v (%s)", r.ready(), tc.ready, r)
			}
			if !strings.Contains(r.String(), tc.say) {
				t.Errorf("String() = %q, want it to contain %q", r.String(), tc.say)
			}
		})
	}
}

// TestHostOnMachineWithoutForwarding boots an engine host on a machine
// whose net.ipv4.ip_forward is 0, as on one that never ran dockerd, and
// checks that its dockerd starts and serves, containers and a published
// port included, and that the machine's own setting is left as it was.
//
// It changes a machine-wide setting for its duration, so it runs alone:
// scripts/test.sh runs it in a step of its own before go test ./...
// starts other dockerds, with DOCKER_TLS_TEST_MACHINE_WIDE=1.
func TestHostOnMachineWithoutForwarding(t *testing.T) {
	if os.Getenv("DOCKER_TLS_TEST_MACHINE_WIDE") != "1" {
		t.Skip("changes the machine's net.ipv4.ip_forward, so it runs alone: scripts/test.sh runs it in its own step (DOCKER_TLS_TEST_MACHINE_WIDE=1)")
	}
	if missing := Missing(); len(missing) > 0 {
		msg := "engine hosts need " + strings.Join(missing, ", ") + " (run as root after scripts/deps.sh)"
		if os.Getenv("DOCKER_TLS_TEST_REQUIRE_ENGINES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	const forward = "/proc/sys/net/ipv4/ip_forward"
	saved, err := os.ReadFile(forward)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(forward, saved, 0o644); err != nil {
			t.Errorf("restore %s to %s: %v", forward, strings.TrimSpace(string(saved)), err)
		}
	})
	if err := os.WriteFile(forward, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	rootfs, err := BuildRootfs("../../scripts/engine-rootfs.sh")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(filepath.Join(t.TempDir(), "ssh"))
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := Start(rootfs, c, 1)
	for _, h := range hosts {
		t.Cleanup(func() {
			if err := h.Stop(); err != nil {
				t.Error(err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	h := hosts[0]
	root := func(command string) string {
		t.Helper()
		out, err := h.Root(command)
		if err != nil {
			t.Fatalf("%s: %v\n%s", command, err, out)
		}
		return strings.TrimSpace(out)
	}

	if got := root("cat " + forward); got != "1" {
		t.Errorf("the host's ip_forward is %q: its dockerd should have switched it on", got)
	}
	if got := root("systemctl is-active docker.service"); got != "active" {
		t.Errorf("docker.service is %q", got)
	}
	if got := root("docker version --format '{{.Server.Version}}'"); got == "" {
		t.Error("dockerd does not answer on its socket")
	}
	// A container on the default bridge with a published port: what
	// forwarding is for. An image of one file, since the host has no way
	// out to a registry.
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("busybox-static is not installed (apt-get install busybox-static): %v", err)
	}
	if out, err := h.As("root", "mkdir -p /tmp/img/bin && cat >/tmp/img/bin/busybox && chmod 755 /tmp/img/bin/busybox && "+
		"ln -s busybox /tmp/img/bin/httpd && tar -C /tmp/img -c . | docker import - bb:local", bb); err != nil {
		t.Fatalf("import busybox: %v\n%s", err, out)
	}
	root("mkdir -p /tmp/www && echo served >/tmp/www/index.html && docker run -d --name web -p 8080:80 -v /tmp/www:/www bb:local httpd -f -p 80 -h /www")
	// The published port, from this machine: DNAT to the container's
	// address on the host's bridge, which needs the host to forward.
	var got string
	for i := 0; i < 50; i++ {
		if got, err = httpGet("http://" + h.Addr + ":8080/"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.TrimSpace(got) != "served" {
		t.Errorf("the container's published port answered %q (%v), want \"served\"", got, err)
	}
	if journal := root("journalctl -u docker.service -o cat --no-pager"); strings.Contains(journal, "read-only file system") {
		t.Errorf("dockerd could not write a setting it needs:\n%s", journal)
	}

	if now, err := os.ReadFile(forward); err != nil || strings.TrimSpace(string(now)) != "0" {
		t.Errorf("the machine's ip_forward is %q (%v): the host should not have changed it", now, err)
	}
}

func httpGet(url string) (string, error) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}
