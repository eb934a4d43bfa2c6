package e2e

// Engine hosts: real Linux machines for the engine tests, made on this one.
// Each is a network namespace with an address only on its own veth pair
// (so nothing it does can leave this machine), running a real Debian
// bookworm with systemd as PID 1 under systemd-nspawn, and in it Debian's
// openssh-server and docker.io as ordinary systemd services. The root file
// system is built once (scripts/engine-rootfs.sh) and shared read-only;
// each host's writes go to a tmpfs overlay and vanish when it stops.
// ../shared/recipes/engine-hosts.md says why each flag is there.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// EngineHost is one test host. Addr is its only address; the machine
// reaches it as root, as "deploy" (password-less sudo) or as "asker"
// (sudo asks for a password), with the key in SSH.
type EngineHost struct {
	Name string
	Addr string
	SSH  *SSHClient
	// HostKey is the host's public key as a known_hosts line.
	HostKey string

	t       testing.TB
	dir     string
	netns   string
	veth    string
	cgroups []string
	nspawn  *exec.Cmd
	done    chan struct{}
	console *lockedBuffer
}

// SSHClient is this machine's side: a key every test host accepts, and an
// ssh_config that uses it and the hosts' known keys, handed to docker tls
// with --ssh-config as a user with such hosts in ~/.ssh/config would have.
type SSHClient struct {
	mu         sync.Mutex // known_hosts
	Dir        string
	Key        string
	Config     string
	KnownHosts string
}

var (
	rootfsOnce = sync.OnceValues(buildRootfs)
	hostSerial atomic.Int32
)

// buildRootfs builds (or finds, built by an earlier run) the hosts' root
// file system.
func buildRootfs() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "../scripts/engine-rootfs.sh").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("scripts/engine-rootfs.sh: %v\n%s", err, ee.Stderr)
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// needEngineHosts skips the test where engine hosts cannot be made, or
// fails it when DOCKER_TLS_TEST_REQUIRE_ENGINES=1 (CI).
func needEngineHosts(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for p, pkg := range map[string]string{"systemd-nspawn": "systemd-container", "debootstrap": "debootstrap", "ip": "iproute2", "ssh": "openssh-client", "ssh-keygen": "openssh-client", "nsenter": "util-linux"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("engine hosts need %s (run as root after scripts/deps.sh)", strings.Join(missing, ", "))
	if os.Getenv("DOCKER_TLS_TEST_REQUIRE_ENGINES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// NewSSHClient makes this machine's ssh key and config for the hosts.
func NewSSHClient(t testing.TB) *SSHClient {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ssh")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := &SSHClient{Dir: dir, Key: filepath.Join(dir, "id_ed25519"), Config: filepath.Join(dir, "config"), KnownHosts: filepath.Join(dir, "known_hosts")}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "docker-tls-e2e", "-f", c.Key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	if err := os.WriteFile(c.KnownHosts, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`Host *
  IdentityFile %s
  IdentitiesOnly yes
  UserKnownHostsFile %s
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  ConnectTimeout 10
`, c.Key, c.KnownHosts)
	if err := os.WriteFile(c.Config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// Trust adds the host's key to the client's known_hosts.
func (c *SSHClient) Trust(h *EngineHost) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := os.OpenFile(c.KnownHosts, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, h.HostKey)
	return err
}

// Forget empties known_hosts.
func (c *SSHClient) Forget() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return os.WriteFile(c.KnownHosts, nil, 0o600)
}

// StartEngineHosts boots n hosts in parallel, trusted by c, and stops them
// (by pid) when the test ends, failed or not.
func StartEngineHosts(t testing.TB, c *SSHClient, n int) []*EngineHost {
	t.Helper()
	needEngineHosts(t)
	rootfs, err := rootfsOnce()
	if err != nil {
		t.Fatalf("engine host root file system: %v", err)
	}
	hosts := make([]*EngineHost, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range hosts {
		h := &EngineHost{t: t, SSH: c, done: make(chan struct{}), console: &lockedBuffer{}}
		hosts[i] = h
		t.Cleanup(h.stop)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = h.start(rootfs)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("engine host %d: %v\nconsole:\n%s", i, err, tailLines(hosts[i].console.String(), 30))
		}
	}
	return hosts
}

func (h *EngineHost) start(rootfs string) error {
	// Names unique to this process and host: several test runs may share
	// the machine. 10.231.N.0/30 with N taken from a free slot.
	serial := hostSerial.Add(1)
	id := fmt.Sprintf("%d%d", os.Getpid()%10000, serial)
	h.Name = "dtls-e2e-" + id
	h.netns = h.Name
	h.veth = "dtv" + id
	if len(h.veth) > 15 {
		h.veth = h.veth[:15]
	}
	var subnet int
	for n := 1; n < 255; n++ {
		slot := 1 + (os.Getpid()+int(serial)*7+n)%254
		if out, _ := exec.Command("ip", "-o", "addr", "show", "to", fmt.Sprintf("10.231.%d.0/30", slot)).Output(); len(bytes.TrimSpace(out)) == 0 {
			subnet = slot
			break
		}
	}
	if subnet == 0 {
		return errors.New("no free 10.231.N.0/30 subnet")
	}
	h.Addr = fmt.Sprintf("10.231.%d.2", subnet)
	local := fmt.Sprintf("10.231.%d.1/30", subnet)
	peer := h.veth + "p"
	if len(peer) > 15 {
		peer = "p" + h.veth[1:]
	}
	for _, args := range [][]string{
		{"netns", "add", h.netns},
		{"link", "add", h.veth, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", h.netns},
		{"addr", "add", local, "dev", h.veth},
		{"link", "set", h.veth, "up"},
		{"-n", h.netns, "addr", "add", h.Addr + "/30", "dev", peer},
		{"-n", h.netns, "link", "set", peer, "up"},
		{"-n", h.netns, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}

	// The host's own files: its ssh host key, who may log in, its name in
	// /etc/hosts (sudo needs it), its lifetime, and /var/lib/docker (a
	// plain directory: overlay2 cannot sit on the overlay root).
	dir, err := os.MkdirTemp("", h.Name+"-")
	if err != nil {
		return err
	}
	h.dir = dir
	sshDir := filepath.Join(dir, "ssh")
	authDir := filepath.Join(sshDir, "authorized_keys")
	for _, d := range []string{authDir, filepath.Join(dir, "e2e"), filepath.Join(dir, "docker")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	hostKey := filepath.Join(sshDir, "ssh_host_ed25519_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.Name, "-f", hostKey).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return err
	}
	f := strings.Fields(string(pub))
	h.HostKey = h.Addr + " " + f[0] + " " + f[1]
	if err := h.SSH.Trust(h); err != nil {
		return err
	}
	userKey, err := os.ReadFile(h.SSH.Key + ".pub")
	if err != nil {
		return err
	}
	for _, u := range []string{"root", "deploy", "asker"} {
		if err := os.WriteFile(filepath.Join(authDir, u), userKey, 0o644); err != nil {
			return err
		}
	}
	hosts := fmt.Sprintf("127.0.0.1 localhost\n127.0.1.1 %s\n%s %s\n", h.Name, h.Addr, h.Name)
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "e2e", "lifetime"), []byte("1800\n"), 0o644); err != nil {
		return err
	}

	// nspawn --keep-unit makes payload/ and supervisor/ cgroups under its
	// caller's: it starts in cgroups of its own so stop can remove them.
	var join []string
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*/cgroup.procs")
	for _, procs := range hierarchies {
		cg := filepath.Join(filepath.Dir(procs), h.Name)
		if err := os.Mkdir(cg, 0o755); err == nil {
			h.cgroups = append(h.cgroups, cg)
			join = append(join, filepath.Join(cg, "cgroup.procs"))
		}
	}
	args := []string{
		"--boot", "--directory=" + rootfs, "--volatile=overlay",
		"--machine=" + h.Name, "--hostname=" + h.Name,
		"--register=no", "--keep-unit",
		"--network-namespace-path=/run/netns/" + h.netns,
		"--capability=all", "--system-call-filter=add_key keyctl bpf",
		"--console=read-only", "--setenv=SYSTEMD_COLORS=0", "--resolv-conf=off", "--timezone=off",
		"--bind=" + filepath.Join(dir, "docker") + ":/var/lib/docker",
		"--bind-ro=" + sshDir + ":/etc/ssh/e2e",
		"--bind-ro=" + filepath.Join(dir, "hosts") + ":/etc/hosts",
		"--bind-ro=" + filepath.Join(dir, "e2e") + ":/etc/e2e",
	}
	script := `for p in $CGROUP_PROCS; do echo $$ >"$p"; done
exec systemd-nspawn "$@"`
	cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.Env = append(os.Environ(), "CGROUP_PROCS="+strings.Join(join, " "), "SYSTEMD_LOG_LEVEL=warning")
	cmd.Stdout, cmd.Stderr = h.console, h.console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	h.nspawn = cmd
	go func() { _ = cmd.Wait(); close(h.done) }()

	// Ready once sshd and docker are active, within a minute.
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-h.done:
			return errors.New("systemd-nspawn exited while booting")
		default:
		}
		if conn, err := net.DialTimeout("tcp", h.Addr+":22", time.Second); err == nil {
			conn.Close()
			out, err := h.Root("systemctl is-active ssh docker")
			if err == nil {
				return nil
			}
			last = out
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("not ready within 60 s: %s", last)
}

// Root runs a shell command on the host as root over ssh, bounded to two
// minutes, and returns its combined output.
func (h *EngineHost) Root(command string) (string, error) {
	return h.As("root", command, nil)
}

// As runs a shell command on the host as user, with stdin.
func (h *EngineHost) As(user, command string, stdin []byte) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", "-F", h.SSH.Config, "-o", "BatchMode=yes", "-l", user, h.Addr, "--", command)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// MustRoot is Root that fails the test on error.
func (h *EngineHost) MustRoot(command string) string {
	h.t.Helper()
	out, err := h.Root(command)
	if err != nil {
		h.t.Fatalf("%s: %s: %v\n%s", h.Name, command, err, out)
	}
	return out
}

// stop halts the host (SIGTERM to nspawn is a clean poweroff, about 2 s),
// kills it after 20 s, and removes its namespace, veth, cgroups and files.
func (h *EngineHost) stop() {
	if h.nspawn != nil && h.nspawn.Process != nil {
		// Containers that ignore SIGTERM (sleep as PID 1) would hold the
		// halt for docker's 10 s stop timeout each.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = exec.CommandContext(ctx, "ssh", "-F", h.SSH.Config, "-o", "BatchMode=yes", "-l", "root", h.Addr, "--", "docker kill $(docker ps -q) >/dev/null 2>&1").Run()
		cancel()
		_ = h.nspawn.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-h.nspawn.Process.Pid, syscall.SIGKILL)
			select {
			case <-h.done:
			case <-time.After(10 * time.Second):
				h.t.Errorf("%s: systemd-nspawn (pid %d) did not exit", h.Name, h.nspawn.Process.Pid)
			}
		}
	}
	if h.veth != "" {
		_ = exec.Command("ip", "link", "del", h.veth).Run()
	}
	if h.netns != "" {
		_ = exec.Command("ip", "netns", "del", h.netns).Run()
	}
	// Leaf cgroups first; a cgroup with processes left cannot go, and says so.
	for _, cg := range h.cgroups {
		out, err := exec.Command("find", cg, "-depth", "-type", "d", "-exec", "rmdir", "{}", ";").CombinedOutput()
		if err != nil {
			h.t.Logf("%s: remove cgroup %s: %v %s", h.Name, cg, err, out)
		}
	}
	if h.dir != "" {
		unmountUnder(h.dir)
		_ = os.RemoveAll(h.dir)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
