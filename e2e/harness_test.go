// Package e2e runs the built docker-tls binary as users do: installed as a
// Docker CLI plugin in a temporary DOCKER_CONFIG and driven through the real
// docker CLI, against a real dockerd started with --tlsverify on a free
// loopback port, with real openssl and curl for interop.
//
// Every test that needs something this machine lacks (root, dockerd, docker,
// openssl, curl) skips with the reason and the package to install.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/internal/dbhelper"
	"github.com/docker-tls/docker-tls/internal/enginehost"
	"github.com/docker-tls/docker-tls/internal/testpg"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

// pluginBinary is the docker-tls binary TestMain builds once for the
// package, with helperBinary, its database helper (cmd/docker-tls-db), where
// the plugin looks for it (internal/dbhelper); crashBinary the helper built
// with -tags crashtest, which dies at a named step (package crashpoint), for
// the crash suite only: it links the database drivers, so it runs every
// command itself.
var pluginBinary, helperBinary, crashBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "docker-tls-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginBinary = filepath.Join(dir, "docker-tls")
	helperBinary = dbhelper.Path(pluginBinary)
	var cover []string
	if os.Getenv("DOCKER_TLS_E2E_COVERDIR") != "" {
		// make test: the plugin records which statements the e2e suite
		// ran, in every package, for the coverage report beside the unit
		// tests' (scripts/test.sh).
		cover = []string{"-cover", "-coverpkg=github.com/docker-tls/docker-tls/..."}
	}
	crashBinary = filepath.Join(dir, "docker-tls-crashtest")
	for _, b := range []struct {
		out, pkg string
		flags    []string
	}{
		{pluginBinary, "../cmd/docker-tls", cover},
		{helperBinary, "../cmd/docker-tls-db", cover},
		{crashBinary, "../cmd/docker-tls-db", []string{"-tags", "crashtest"}},
	} {
		build := exec.Command("go", append(append([]string{"build", "-o", b.out}, b.flags...), b.pkg)...)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s %v: %v\n%s", b.pkg, b.flags, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need skips the test unless every named program is on PATH.
func need(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			pkg := map[string]string{"dockerd": "docker.io", "docker": "docker.io", "openssl": "openssl", "curl": "curl", "systemd-analyze": "systemd"}[p]
			if pkg == "" {
				pkg = p
			}
			t.Skipf("%s is not installed (apt-get install %s)", p, pkg)
		}
	}
}

// needRoot skips the test unless it runs as root, which dockerd requires.
func needRoot(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root on Linux to start a real dockerd (run `sudo make test`)")
	}
}

// Env is one user's machine: a temporary DOCKER_CONFIG with the plugin
// installed, a temporary HOME, and nothing inherited that could point the
// docker CLI elsewhere (DOCKER_HOST, DOCKER_CONTEXT, DOCKER_CERT_PATH …).
type Env struct {
	t         testing.TB
	Dir       string // scratch space for the test's files
	ConfigDir string // DOCKER_CONFIG
	Home      string
	// Secrets are strings that must never appear in any output.
	Secrets []string
	// extraEnv is added to every command's environment.
	extraEnv []string
}

// keyringProbe says once per test binary whether a real OS keyring answers
// (a Secret Service under scripts/with-keyring.sh on Linux).
var keyringProbe = sync.OnceValue(func() error {
	k := keystore.NewKeyring(os.TempDir())
	k.IndexPath = filepath.Join(os.TempDir(), fmt.Sprintf("docker-tls-e2e-probe-%d.json", os.Getpid()))
	defer os.Remove(k.IndexPath)
	k.Timeout = 5 * time.Second
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return err
	}
	id := fmt.Sprintf("e2e-probe-%d", os.Getpid())
	if err := k.Put(id, key, true); err != nil {
		return err
	}
	return k.Delete(id)
})

// RequireKeyring skips the test without a usable OS keyring, or fails it
// when DOCKER_TLS_TEST_REQUIRE_KEYRING=1 (CI), so CI never skips quietly.
func RequireKeyring(t testing.TB) {
	t.Helper()
	if err := keyringProbe(); err != nil {
		msg := fmt.Sprintf("no usable OS keyring (%v): run under scripts/with-keyring.sh (apt-get install dbus gnome-keyring)", err)
		if os.Getenv("DOCKER_TLS_TEST_REQUIRE_KEYRING") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// NewEnv makes a fresh Env with the plugin installed. Keys go to the OS
// keyring, docker-tls's default, when one answers; otherwise the Env's
// config.json selects the file key store so that tests not about the
// keyring still run.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	dir := t.TempDir()
	e := &Env{t: t, Dir: dir, ConfigDir: filepath.Join(dir, "docker-config"), Home: filepath.Join(dir, "home")}
	for _, d := range []string{filepath.Join(e.ConfigDir, "cli-plugins"), e.Home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	plugin := filepath.Join(e.ConfigDir, "cli-plugins", "docker-tls")
	for _, b := range [][2]string{{pluginBinary, plugin}, {helperBinary, dbhelper.Path(plugin)}} {
		if err := copyFile(b[0], b[1]); err != nil {
			t.Fatal(err)
		}
	}
	if keyringProbe() != nil {
		e.UseFileKeystore()
	}
	return e
}

// copyFile copies an executable, making the directory it goes in.
func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o755)
}

// UseFileKeystore selects the file key store in the Env's config.json, the
// way a user configures a headless machine.
func (e *Env) UseFileKeystore() {
	e.t.Helper()
	cfg := []byte(`{"plugins": {"tls": {"keystore": "file"}}}` + "\n")
	if err := os.WriteFile(filepath.Join(e.ConfigDir, "config.json"), cfg, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// Path returns a path inside the test's scratch directory.
func (e *Env) Path(parts ...string) string {
	return filepath.Join(append([]string{e.Dir}, parts...)...)
}

// Setenv adds a variable to the environment of every later command.
func (e *Env) Setenv(k, v string) { e.extraEnv = append(e.extraEnv, k+"="+v) }

func (e *Env) environ() []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + e.Home,
		"DOCKER_CONFIG=" + e.ConfigDir,
		"LANG=C",
	}
	// The keyring session the tests run in (scripts/with-keyring.sh), and
	// where a -cover build of the plugin writes its counters.
	for _, k := range []string{"DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR", "XDG_DATA_HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	// (go test -cover sets GOCOVERDIR for its own use, hence a name of ours.)
	if dir := os.Getenv("DOCKER_TLS_E2E_COVERDIR"); dir != "" {
		env = append(env, "GOCOVERDIR="+dir)
	}
	return append(env, e.extraEnv...)
}

// Result is what a command printed and how it exited.
type Result struct {
	Args   []string
	Stdout string
	Stderr string
	Code   int
}

func (r Result) String() string {
	return fmt.Sprintf("%s (exit %d)\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// Run runs a program with the Env's environment, bounded to two minutes.
func (e *Env) Run(stdin io.Reader, name string, args ...string) Result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = e.environ()
	cmd.Dir = e.Dir
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Args: append([]string{name}, args...), Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.Code = exitErr.ExitCode()
	default:
		e.t.Fatalf("run %s: %v", name, err)
	}
	e.assertNoSecrets(r)
	return r
}

// assertNoSecrets fails the test if a command printed private key material
// (a PEM header, or any line of any private key file under the Env, such as
// the context store's key.pem copies) or a known passphrase. Tests that
// export a key on purpose read the file, not the output.
func (e *Env) assertNoSecrets(r Result) {
	e.t.Helper()
	keyLines := e.privateKeyLines()
	for _, out := range []string{r.Stdout, r.Stderr} {
		for _, l := range keyLines {
			if strings.Contains(out, l) {
				e.t.Fatalf("%s printed private key material", strings.Join(r.Args, " "))
			}
		}
		if strings.Contains(out, "PRIVATE KEY-----") {
			e.t.Fatalf("%s printed a private key", strings.Join(r.Args, " "))
		}
		for _, s := range e.Secrets {
			if len(s) < 12 {
				e.t.Fatalf("secret %d is too short to check for reliably", len(s))
			}
			if strings.Contains(out, s) {
				e.t.Fatalf("%s printed a secret", strings.Join(r.Args, " "))
			}
		}
	}
}

// privateKeyLines returns the base64 lines of every private key file under
// the Env's directory (40+ characters each, so no false matches).
func (e *Env) privateKeyLines() []string {
	var lines []string
	_ = filepath.WalkDir(e.Dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".pem") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(data, []byte("PRIVATE KEY-----")) {
			return nil
		}
		for _, l := range strings.Split(string(data), "\n") {
			if len(l) >= 40 && !strings.HasPrefix(l, "-----") {
				lines = append(lines, l)
			}
		}
		return nil
	})
	return lines
}

// Docker runs the real docker CLI.
func (e *Env) Docker(args ...string) Result {
	e.t.Helper()
	return e.Run(nil, "docker", args...)
}

// TLS runs `docker tls ARGS…` through the real docker CLI.
func (e *Env) TLS(args ...string) Result {
	e.t.Helper()
	return e.Docker(append([]string{"tls"}, args...)...)
}

// MustTLS runs `docker tls ARGS…` and fails the test unless it succeeds.
func (e *Env) MustTLS(args ...string) Result {
	e.t.Helper()
	r := e.TLS(args...)
	if r.Code != 0 {
		e.t.Fatalf("expected success: %s", r)
	}
	return r
}

// Standalone runs the binary directly, as `docker-tls ARGS…`.
func (e *Env) Standalone(args ...string) Result {
	e.t.Helper()
	return e.Run(nil, filepath.Join(e.ConfigDir, "cli-plugins", "docker-tls"), args...)
}

// ClientTLS is a set of client-side files for the docker CLI or curl.
type ClientTLS struct{ CA, Cert, Key string }

// DirTLS is the DOCKER_CERT_PATH layout: ca.pem, cert.pem, key.pem.
func DirTLS(dir string) ClientTLS {
	return ClientTLS{filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
}

// DockerVia runs the docker CLI against host with explicit TLS flags, the
// way the guides do.
func (e *Env) DockerVia(host string, c ClientTLS, args ...string) Result {
	e.t.Helper()
	flags := []string{"--tlsverify", "--tlscacert=" + c.CA, "--tlscert=" + c.Cert, "--tlskey=" + c.Key, "-H", host}
	return e.Docker(append(flags, args...)...)
}

// Dockerd is a real dockerd started by a test with --tlsverify on
// 127.0.0.1 and a free port, with every path of its own under a temp dir.
type Dockerd struct {
	Port int
	Host string // tcp://127.0.0.1:PORT
	dir  string
	log  string
	cmd  *exec.Cmd
	done chan error
	// stopped is set once stop has run (Stop and the cleanup both call it).
	stopped bool
}

// ServerTLS is what dockerd gets as --tlscacert/--tlscert/--tlskey, and how
// it uses them: --tlsverify by default; NoVerify runs --tls without
// --tlsverify (no client certificates asked for); Plain runs no TLS at all.
type ServerTLS struct {
	CA, Cert, Key string
	NoVerify      bool
	Plain         bool
	// ConfigFile, if set, is a daemon.json that carries the TLS settings.
	ConfigFile string
	// Port, if set, is the port to listen on (to restart an engine in place).
	Port int
}

// StartEngine issues a server certificate for localhost and 127.0.0.1 from
// the Env's default CA into the scratch directory dir and starts a dockerd
// --tlsverify with it. It returns the dockerd and the certificate directory.
func (e *Env) StartEngine(t testing.TB, dir string) (*Dockerd, string) {
	t.Helper()
	srv := e.Path(dir)
	e.MustTLS("server", "issue", "localhost", "127.0.0.1", "--out", srv)
	return StartDockerd(t, ServerDir(srv)), srv
}

// ServerDir is the ServerTLS for a directory written by `docker tls server
// issue` (ca.pem, server-cert.pem, server-key.pem), with --tlsverify.
func ServerDir(dir string) ServerTLS {
	return ServerTLS{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "server-cert.pem"), Key: filepath.Join(dir, "server-key.pem")}
}

// StartDockerd starts dockerd and stops it when the test ends. It skips the
// test without root or dockerd.
func StartDockerd(t testing.TB, s ServerTLS) *Dockerd {
	t.Helper()
	needRoot(t)
	need(t, "dockerd")
	var lastErr error
	for attempt := range 3 { // a free port can be taken between probe and bind
		d, err := startDockerd(t, s)
		if err == nil {
			return d
		}
		lastErr = err
		t.Logf("dockerd start attempt %d: %v", attempt+1, err)
	}
	t.Fatalf("dockerd did not start: %v", lastErr)
	return nil
}

func startDockerd(t testing.TB, s ServerTLS) (*Dockerd, error) {
	// Short path: containerd's sockets live under --exec-root and unix
	// socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "dtls-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if s.Port != 0 {
		port, err = s.Port, nil
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d := &Dockerd{Port: port, Host: fmt.Sprintf("tcp://127.0.0.1:%d", port), dir: dir, log: filepath.Join(dir, "dockerd.log"), done: make(chan error, 1)}
	logFile, err := os.Create(d.log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args := []string{"-H", d.Host, "-H", "unix://" + filepath.Join(dir, "docker.sock")}
	switch {
	case s.ConfigFile != "":
		args = append(args, "--config-file", s.ConfigFile)
	case s.Plain:
		args = append(args, "--tls=false")
	case s.NoVerify:
		// dockerd 20.10 implies --tlsverify when --tls comes with a CA file.
		args = append(args, "--tls", "--tlsverify=false", "--tlscert="+s.Cert, "--tlskey="+s.Key)
	default:
		args = append(args, "--tlsverify", "--tlscacert="+s.CA, "--tlscert="+s.Cert, "--tlskey="+s.Key)
	}
	d.cmd = exec.Command("dockerd", append(args,
		"--data-root", filepath.Join(dir, "root"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
		// This machine's own forwarding stays as it was: no test changes
		// what a later one finds.
		"--ip-forward=false",
		"--storage-driver=vfs",
	)...)
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	d.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		logFile.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { d.done <- d.cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() { d.stop(t) })

	want := fmt.Sprintf("API listen on 127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.done:
			d.done <- err
			return nil, fmt.Errorf("dockerd exited: %v\n%s", err, d.tail(30))
		case <-time.After(200 * time.Millisecond):
		}
		if data, _ := os.ReadFile(d.log); bytes.Contains(data, []byte(want)) {
			return d, nil
		}
	}
	return nil, fmt.Errorf("dockerd not listening after 60s:\n%s", d.tail(30))
}

// Stop stops dockerd now (it is also stopped when the test ends).
func (d *Dockerd) Stop(t testing.TB) { d.stop(t) }

// stop sends SIGTERM to dockerd's own pid, waits for it to exit (SIGKILL
// after 30s), then removes its directory.
func (d *Dockerd) stop(t testing.TB) {
	if d.cmd.Process == nil || d.stopped {
		return
	}
	d.stopped = true
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Logf("dockerd did not stop after SIGTERM; killing it")
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
	if t.Failed() {
		t.Logf("dockerd log tail:\n%s", d.tail(40))
	}
	// A clean exit unmounts everything under --data-root, but a dockerd
	// that failed during start-up can leave its data-root bind mount.
	enginehost.UnmountUnder(d.dir)
	for range 10 {
		if err := os.RemoveAll(d.dir); err == nil {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("could not remove %s", d.dir)
}

// Log returns dockerd's log so far.
func (d *Dockerd) Log() string {
	data, _ := os.ReadFile(d.log)
	return string(data)
}

func (d *Dockerd) tail(n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(d.Log()))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return strconv.Atoi(p)
}

// requireOK fails unless r succeeded.
func requireOK(t testing.TB, r Result) {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("expected success: %s", r)
	}
}

// requireFail fails unless r failed with an error on stderr that contains
// every one of wants (case-insensitive), on one line.
func requireFail(t testing.TB, r Result, wants ...string) {
	t.Helper()
	if r.Code == 0 {
		t.Fatalf("expected failure: %s", r)
	}
	low := strings.ToLower(r.Stderr)
	for _, w := range wants {
		if !strings.Contains(low, strings.ToLower(w)) {
			t.Fatalf("stderr does not mention %q: %s", w, r)
		}
	}
}

// Proc is a long-running command of an Env (docker tls ca serve, cfssl
// serve), stopped with SIGTERM when the test ends.
type Proc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	exit int
	e    *Env
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start runs name args… in the background with the Env's environment.
func (e *Env) Start(name string, args ...string) *Proc {
	e.t.Helper()
	p := &Proc{out: &lockedBuffer{}, done: make(chan struct{}), e: e}
	p.cmd = exec.Command(name, args...)
	p.cmd.Env = e.environ()
	p.cmd.Dir = e.Dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// Its own process group: Stop and Kill reach what it started too (the
	// docker CLI runs docker tls as a child, and passes it no SIGTERM);
	// WaitDelay: a grandchild holding the output pipe never hangs Wait.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		e.t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.exit = ee.ExitCode()
		}
		close(p.done)
	}()
	e.t.Cleanup(func() { p.Stop() })
	return p
}

// WaitFor waits until the output contains s, for at most 30 seconds.
func (p *Proc) WaitFor(s string) {
	p.e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(p.out.String(), s) {
			return
		}
		select {
		case <-p.done:
			p.e.t.Fatalf("%s exited (%d) before printing %q:\n%s", p.cmd.Path, p.exit, s, p.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	p.e.t.Fatalf("%s did not print %q in 30s:\n%s", p.cmd.Path, s, p.out.String())
}

// Wait waits up to d for the process to exit by itself and returns its
// exit code; it fails the test if it does not.
func (p *Proc) Wait(d time.Duration) int {
	p.e.t.Helper()
	select {
	case <-p.done:
		p.e.assertNoSecrets(Result{Args: p.cmd.Args, Stdout: p.out.String()})
		return p.exit
	case <-time.After(d):
		p.e.t.Fatalf("%s did not exit in %s:\n%s", p.cmd.Path, d, p.out.String())
		return -1
	}
}

// Output is everything the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Stop sends SIGTERM, waits (SIGKILL after 15s) and returns the exit code.
// It also checks that the process never printed a secret.
func (p *Proc) Stop() int {
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	p.e.assertNoSecrets(Result{Args: p.cmd.Args, Stdout: p.out.String()})
	return p.exit
}

// Kill ends the process with SIGKILL (a replica that dies mid-run) and
// waits for it.
func (p *Proc) Kill() {
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// StartPostgres starts a real PostgreSQL (Debian's postgresql) in a temp
// dir, reachable only on a unix socket there, stopped by pid when the test
// ends, and returns the URL of a fresh database in it. Skips with the
// reason when PostgreSQL is not installed.
func StartPostgres(t testing.TB, dbName string) string {
	t.Helper()
	if _, _, err := testpg.Binaries(); err != nil {
		t.Skip(err.Error())
	}
	dir, err := os.MkdirTemp("", "dtls-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg, err := testpg.Start(filepath.Join(dir, "pg"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	url, err := pg.CreateDB(dbName)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// waitExpired waits, a second at a time and at most within, until the
// docker CLI can no longer reach the engine through context name: its
// certificate has expired.
func (e *Env) waitExpired(name string, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for e.Docker("--context", name, "version").Code == 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("the certificate of %s still works after %s", name, within)
		}
		time.Sleep(time.Second)
	}
}
