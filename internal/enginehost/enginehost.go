// Package enginehost makes real Docker engine hosts on this machine, for
// the e2e tests, make bench and make demo: each is a network namespace with
// an address only on its own veth pair (so nothing it does can leave the
// machine), running a real Debian bookworm with systemd as PID 1 under
// systemd-nspawn, with Debian's openssh-server and docker.io as ordinary
// systemd services. The root file system is built once
// (scripts/engine-rootfs.sh) and shared read-only; each host's writes go to
// a tmpfs overlay and vanish when it stops. Needs root.
//
// A host depends on nothing this machine ran before: its network
// namespace is nspawn's own, with /proc/sys/net writable inside as on a
// real host, so its dockerd sets the sysctls it needs itself; and it is
// ready only when sshd and docker are each active and dockerd answers.
//
// It is never part of the docker-tls binary. ../shared/recipes/engine-hosts.md
// says why each systemd-nspawn flag is there.
package enginehost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Host is one engine host. Addr is its only address; the machine reaches
// it as root, as "deploy" (password-less sudo) or as "asker" (sudo asks
// for a password), with the Client's key.
type Host struct {
	Name string
	Addr string
	// Gateway is this machine's address on the host's link: what the host
	// reaches a service on this machine at.
	Gateway string
	SSH     *Client
	// HostKey is the host's public key as a known_hosts line.
	HostKey string

	dir     string
	veth    string
	subnet  string
	cgroups []string
	nspawn  *exec.Cmd
	done    chan struct{}
	console *lockedBuffer
}

// Client is this machine's side: a key every host accepts, and an
// ssh_config that uses it and the hosts' known keys (ssh -F), as a user
// with such hosts in ~/.ssh/config would have.
type Client struct {
	mu         sync.Mutex // known_hosts
	Dir        string
	Key        string
	Config     string
	KnownHosts string
}

// NewClient makes an ssh key and config in dir (created 0700).
func NewClient(dir string) (*Client, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &Client{Dir: dir, Key: filepath.Join(dir, "id_ed25519"), Config: filepath.Join(dir, "config"), KnownHosts: filepath.Join(dir, "known_hosts")}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "docker-tls-enginehost", "-f", c.Key).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	if err := os.WriteFile(c.KnownHosts, nil, 0o600); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`Host *
  IdentityFile %s
  IdentitiesOnly yes
  UserKnownHostsFile %s
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  ConnectTimeout 10
`, c.Key, c.KnownHosts)
	return c, os.WriteFile(c.Config, []byte(config), 0o600)
}

// Trust adds the host's key to the client's known_hosts.
func (c *Client) Trust(h *Host) error {
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

// Missing lists what this machine lacks to make hosts (root, packages).
func Missing() []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, p := range []struct{ prog, pkg string }{
		{"systemd-nspawn", "systemd-container"}, {"debootstrap", "debootstrap"}, {"ip", "iproute2"},
		{"ssh", "openssh-client"}, {"ssh-keygen", "openssh-client"},
	} {
		if _, err := exec.LookPath(p.prog); err != nil {
			missing = append(missing, p.pkg)
		}
	}
	return missing
}

// BuildRootfs runs script (scripts/engine-rootfs.sh), which builds or
// finds the hosts' root file system, and returns its path.
func BuildRootfs(script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, script).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%s: %v\n%s", script, err, ee.Stderr)
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

var hostSerial atomic.Int32

// Start boots n hosts from rootfs in parallel, trusted by c. The caller
// must Stop every host returned, also on error (hosts that did not boot
// are returned too, so that their leftovers go).
func Start(rootfs string, c *Client, n int) ([]*Host, error) {
	hosts := make([]*Host, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range hosts {
		h := &Host{SSH: c, done: make(chan struct{}), console: &lockedBuffer{}}
		hosts[i] = h
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = h.start(rootfs)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return hosts, fmt.Errorf("engine host %d: %w\nconsole:\n%s", i, err, tailLines(hosts[i].console.String(), 30))
		}
	}
	return hosts, nil
}

func (h *Host) start(rootfs string) error {
	// Names unique to this process and host: several runs may share the
	// machine. 10.231.N.0/30 with N taken from a free slot.
	serial := hostSerial.Add(1)
	id := fmt.Sprintf("%d%d", os.Getpid()%10000, serial)
	h.Name = "dtls-e2e-" + id
	h.veth = "dtv" + id
	if len(h.veth) > 15 {
		h.veth = h.veth[:15]
	}
	if err := h.claimSubnet(int(serial)); err != nil {
		return err
	}
	if err := h.writeFiles(); err != nil {
		return err
	}
	if err := h.boot(rootfs); err != nil {
		return err
	}
	return h.waitReady()
}

// claimSubnet picks a 10.231.N.0/30 no address of this machine is in.
func (h *Host) claimSubnet(serial int) error {
	var subnet int
	for n := 1; n < 255; n++ {
		slot := 1 + (os.Getpid()+serial*7+n)%254
		if out, _ := exec.Command("ip", "-o", "addr", "show", "to", fmt.Sprintf("10.231.%d.0/30", slot)).Output(); len(bytes.TrimSpace(out)) == 0 {
			subnet = slot
			break
		}
	}
	if subnet == 0 {
		return errors.New("no free 10.231.N.0/30 subnet")
	}
	h.subnet = fmt.Sprintf("10.231.%d.0/30", subnet)
	h.Addr = fmt.Sprintf("10.231.%d.2", subnet)
	h.Gateway = fmt.Sprintf("10.231.%d.1", subnet)
	return nil
}

// writeFiles makes the host's own files: its ssh host key, who may log
// in, its name in /etc/hosts (sudo needs it), its lifetime, its address,
// and /var/lib/docker (a plain directory: overlay2 cannot sit on the
// overlay root).
func (h *Host) writeFiles() error {
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
	// Its address, which e2e-net.service (scripts/engine-rootfs.sh) puts
	// on eth0 at boot.
	if err := os.WriteFile(filepath.Join(dir, "e2e", "address"), []byte(h.Addr+"/30\n"), 0o644); err != nil {
		return err
	}

	return nil
}

// boot starts systemd-nspawn on rootfs, in cgroups of the host's own.
func (h *Host) boot(rootfs string) error {
	dir, sshDir := h.dir, filepath.Join(h.dir, "ssh")
	// nspawn --keep-unit makes payload/ and supervisor/ cgroups under its
	// caller's: it starts in cgroups of its own so Stop can remove them.
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
		// A network namespace of nspawn's own, joined to this machine by
		// a veth pair that nspawn makes (host side h.veth, eth0 inside).
		// With it nspawn mounts /proc/sys/net writable inside, as a real
		// host has it: the host's dockerd sets what it needs (forwarding,
		// accept_ra on its bridge, IPv6 off in its containers) itself,
		// whatever this machine's own values, which a new namespace
		// copies (net.core.devconf_inherit_init_net = 0). With
		// --network-namespace-path /proc/sys/net is read-only, and on a
		// machine that never ran dockerd (forwarding off) the host's
		// dockerd exits at start: "Enabling IP forwarding failed".
		// (--network-interface cannot move a veth of ours in: nspawn
		// waits for udev, which this machine does not run.)
		"--network-veth-extra=" + h.veth + ":eth0",
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
	return h.addressLink()
}

// waitReady waits for sshd and docker to be each active and dockerd to
// answer, within a minute. A dockerd that failed (systemd gave up
// restarting it) will not come: say why at once, from its journal.
func (h *Host) waitReady() error {
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
			out, _ := h.Root(readyScript)
			r := parseReadiness(out)
			if r.ready() {
				return nil
			}
			last = r.String()
			if r.units["docker"] == "failed" {
				journal, _ := h.Root("journalctl -u docker.service -n 15 --no-pager -o cat")
				return fmt.Errorf("dockerd failed to start (%s); its journal:\n%s", last, journal)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("not ready within 60 s: %s", last)
}

// addressLink gives this machine's side of the host's veth its address,
// once nspawn has made the link (within ten seconds), and checks that no
// other run took the same subnet meanwhile.
func (h *Host) addressLink() error {
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command("ip", "link", "show", "dev", h.veth).Run() != nil {
		select {
		case <-h.done:
			return errors.New("systemd-nspawn exited before making its veth")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("systemd-nspawn made no link %s within 10 s", h.veth)
		}
	}
	local := strings.TrimSuffix(h.Addr, ".2") + ".1/30"
	for _, args := range [][]string{
		{"addr", "add", local, "dev", h.veth},
		{"link", "set", h.veth, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	out, err := exec.Command("ip", "-o", "addr", "show", "to", h.subnet).Output()
	if err != nil {
		return fmt.Errorf("ip addr show to %s: %v", h.subnet, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.TrimSuffix(f[1], ":") != h.veth {
			return fmt.Errorf("subnet %s was taken by another run meanwhile (%s)", h.subnet, f[1])
		}
	}
	return nil
}

// readyScript prints each unit's state, then dockerd's version as its API
// answers it (nothing when it does not).
const readyScript = `for u in ssh docker; do echo "$u=$(systemctl is-active "$u.service")"; done
echo "api=$(docker version --format '{{.Server.Version}}' 2>/dev/null)"`

// readiness is what readyScript saw.
type readiness struct {
	units map[string]string
	api   string
}

func parseReadiness(out string) readiness {
	r := readiness{units: map[string]string{}}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		if k == "api" {
			r.api = v
		} else {
			r.units[k] = v
		}
	}
	return r
}

// ready is true when every unit is active, each on its own (systemctl
// is-active with several units exits 0 when any one is), and dockerd
// answers on its socket.
func (r readiness) ready() bool {
	return r.units["ssh"] == "active" && r.units["docker"] == "active" && r.api != ""
}

func (r readiness) String() string {
	api := "dockerd does not answer"
	if r.api != "" {
		api = "dockerd " + r.api + " answers"
	}
	return fmt.Sprintf("ssh %s, docker %s, %s", orUnknown(r.units["ssh"]), orUnknown(r.units["docker"]), api)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Root runs a shell command on the host as root over ssh, bounded to two
// minutes, and returns its combined output.
func (h *Host) Root(command string) (string, error) {
	return h.As("root", command, nil)
}

// As runs a shell command on the host as user, with stdin.
func (h *Host) As(user, command string, stdin []byte) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", "-F", h.SSH.Config, "-o", "BatchMode=yes", "-l", user, h.Addr, "--", command)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Unreachable cuts (on) or restores (off) this machine's way to the host,
// with an "unreachable" route for its address: a connection then fails at
// once with "No route to host", as to an engine whose network is down,
// while the host itself runs on. Stop restores it too.
func (h *Host) Unreachable(on bool) error {
	verb := "del"
	if on {
		verb = "add"
	}
	out, err := exec.Command("ip", "route", verb, "unreachable", h.Addr+"/32").CombinedOutput()
	if err != nil && (on || !strings.Contains(string(out), "No such process")) {
		return fmt.Errorf("ip route %s unreachable %s: %v: %s", verb, h.Addr, err, out)
	}
	return nil
}

// Stop halts the host (SIGTERM to nspawn is a clean poweroff, about 2 s),
// kills it after 20 s, and removes its veth, cgroups and files.
// It returns what it could not clean up.
func (h *Host) Stop() error {
	_ = h.Unreachable(false)
	var errs []error
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
				errs = append(errs, fmt.Errorf("%s: systemd-nspawn (pid %d) did not exit", h.Name, h.nspawn.Process.Pid))
			}
		}
	}
	// nspawn's namespace, and with it the veth pair, go when it exits;
	// one it left (killed) goes here.
	if h.veth != "" {
		_ = exec.Command("ip", "link", "del", h.veth).Run()
	}
	// Leaf cgroups first; one with processes left cannot go, and says so.
	for _, cg := range h.cgroups {
		if out, err := exec.Command("find", cg, "-depth", "-type", "d", "-exec", "rmdir", "{}", ";").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("%s: remove cgroup %s: %v %s", h.Name, cg, err, out))
		}
	}
	if h.dir != "" {
		UnmountUnder(h.dir)
		if err := os.RemoveAll(h.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// UnmountUnder lazily unmounts every mount point below dir, deepest first
// (what a killed dockerd or nspawn can leave; the e2e harness uses it too).
func UnmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
