package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// busyboxImage imports a one-file image with busybox-static into the engine
// behind ctx, as busybox:local. No registry is needed.
func busyboxImage(t testing.TB, e *Env, ctx string) {
	t.Helper()
	bb := "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		t.Skip("busybox-static is not installed (apt-get install busybox-static)")
	}
	root := e.Path("rootfs")
	for _, d := range []string{"bin", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"sh", "echo", "cat", "sleep", "sha256sum", "ls"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", c)); err != nil {
			t.Fatal(err)
		}
	}
	tarball := e.Path("busybox.tar")
	if out, err := exec.Command("tar", "-C", root, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	requireOK(t, e.Docker("--context", ctx, "import", tarball, "busybox:local"))
}

// agentKeyLines returns the base64 lines and raw DER of a context's key as
// the Secret Service holds it, to search the disk for.
func agentKeyMaterial(t *testing.T, e *Env, id string) (der []byte, pemLines []string) {
	t.Helper()
	cmd := exec.Command("secret-tool", "lookup", "service", "docker-tls", "username", id)
	cmd.Env = e.environ()
	out, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(out), "pkcs8:") {
		t.Fatalf("the key %s is not in the Secret Service: %v", id, err)
	}
	der, err = base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(string(out)), "pkcs8:"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "\n") {
		if len(l) >= 40 && !strings.HasPrefix(l, "-----") {
			pemLines = append(pemLines, l)
		}
	}
	return der, pemLines
}

// TestAgentMode: a context whose key lives only in a real Secret Service
// and the agent's memory drives a real dockerd through the real docker CLI,
// streams and hijacks included, and the key is nowhere on disk.
func TestAgentMode(t *testing.T) {
	need(t, "docker", "secret-tool", "setpriv")
	RequireKeyring(t)
	needRoot(t)
	need(t, "dockerd")
	e := NewEnv(t)
	e.MustTLS("ca", "init")
	d, srv := e.StartEngine(t, "srv")
	stls := ServerDir(srv)

	r := e.MustTLS("context", "create", "ag", "--host", d.Host, "--issue", "--agent")
	if !strings.Contains(r.Stdout, "Start the agent first") {
		t.Fatalf("create --agent: %s", r)
	}
	// Without the agent the docker CLI fails, and docker tls says why.
	if r := e.Docker("--context", "ag", "version"); r.Code == 0 || !strings.Contains(r.Stderr, "Cannot connect to the Docker daemon at unix://") {
		t.Fatalf("docker without the agent: %s", r)
	}
	if ls := e.MustTLS("ls", "--format", "{{.Name}} {{.Key}}"); !strings.Contains(ls.Stdout, "ag keyring (agent: stopped)") {
		t.Fatalf("ls:\n%s", ls.Stdout)
	}
	requireFail(t, e.TLS("verify", "ag"), "verify: 1 of 1 failed")
	// The docker CLI hook (what `docker context use ag` shows) says what to run.
	requireOK(t, e.Docker("context", "use", "ag"))
	hook := e.Standalone("docker-cli-plugin-hooks", `{"RootCmd":"context use"}`)
	requireOK(t, e.Docker("context", "use", "default"))
	if hook.Code != 0 || !strings.Contains(hook.Stdout, "run docker tls agent") {
		t.Fatalf("hook while the agent is stopped: %s", hook)
	}

	e.MustTLS("agent")
	t.Cleanup(func() { e.TLS("agent", "stop") })
	// Starting again is harmless (shell profiles); a second foreground agent is not.
	if r := e.MustTLS("agent"); !strings.Contains(r.Stdout, "already running (pid ") {
		t.Fatalf("second start: %s", r)
	}
	requireFail(t, e.TLS("agent", "--foreground"), "already running")
	ver := func() Result { return e.Docker("--context", "ag", "version", "--format", "{{.Server.Version}}") }
	requireOK(t, ver())
	requireOK(t, e.Docker("--context", "ag", "info", "--format", "{{.ServerVersion}}"))
	if rep, rr := verifyJSON(t, e, "ag"); rr.Code != 0 {
		t.Fatalf("verify through the agent: %s", rr)
	} else {
		expectCheck(t, rep[0], "agent", "ok", "relays")
	}

	t.Run("containers, stdin, exec, logs -f, cp", func(t *testing.T) {
		busyboxImage(t, e, "ag")
		dk := func(args ...string) Result { return e.Docker(append([]string{"--context", "ag"}, args...)...) }
		if r := dk("run", "--rm", "--network", "none", "busybox:local", "echo", "hello from the agent"); r.Code != 0 || strings.TrimSpace(r.Stdout) != "hello from the agent" {
			t.Fatalf("docker run: %s", r)
		}
		in := e.Run(strings.NewReader("piped through\nthe relay\n"), "docker", "--context", "ag", "run", "-i", "--rm", "--network", "none", "busybox:local", "cat")
		if in.Code != 0 || in.Stdout != "piped through\nthe relay\n" {
			t.Fatalf("docker run -i: %s", in)
		}
		requireOK(t, dk("run", "-d", "--name", "box", "--network", "none", "busybox:local", "sleep", "600"))
		if r := dk("exec", "box", "echo", "exec works"); strings.TrimSpace(r.Stdout) != "exec works" {
			t.Fatalf("docker exec: %s", r)
		}
		requireOK(t, dk("run", "-d", "--name", "logger", "--network", "none", "busybox:local", "sh", "-c", "echo one; sleep 1; echo two"))
		start := time.Now()
		if r := dk("logs", "-f", "logger"); r.Code != 0 || r.Stdout != "one\ntwo\n" || time.Since(start) > time.Minute {
			t.Fatalf("docker logs -f: %s", r)
		}
		big := e.Path("big.bin")
		data := make([]byte, 100<<20)
		_, _ = rand.Read(data)
		if err := os.WriteFile(big, data, 0o600); err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(data)
		requireOK(t, dk("cp", big, "box:/tmp/big.bin"))
		back := e.Path("back.bin")
		requireOK(t, dk("cp", "box:/tmp/big.bin", back))
		got, _ := os.ReadFile(back)
		if sha256.Sum256(got) != want {
			t.Fatal("docker cp of 100 MB through the agent changed the data")
		}
		// A docker CLI killed during an idle attach leaves no relay behind:
		// the container stays silent, so only the agent can notice.
		conns := func() int {
			n, err := strconv.Atoi(strings.TrimSpace(e.MustTLS("agent", "status", "--format", "{{.Connections}}").Stdout))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		waitConns := func(want func(int) bool, what string) {
			t.Helper()
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				if want(conns()) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %d open connections", what, conns())
				}
			}
		}
		before := conns()
		att := e.Start("docker", "--context", "ag", "attach", "box")
		waitConns(func(n int) bool { return n > before }, "docker attach did not connect")
		_ = att.cmd.Process.Kill()
		<-att.done
		waitConns(func(n int) bool { return n == before }, "the relay of a killed docker attach stayed open")
		requireOK(t, dk("rm", "-f", "box", "logger"))
	})

	t.Run("50 concurrent docker version", func(t *testing.T) {
		var wg sync.WaitGroup
		results := make([]Result, 50)
		for i := range 50 {
			wg.Add(1)
			go func() { defer wg.Done(); results[i] = ver() }()
		}
		wg.Wait()
		for i, r := range results {
			if r.Code != 0 {
				t.Fatalf("call %d: %s", i, r)
			}
		}
	})

	t.Run("the key is nowhere on disk", func(t *testing.T) {
		id := keyIDOf(t, e, "context/ag")
		der, lines := agentKeyMaterial(t, e, id)
		// The agent's socket directory too: it may live outside DOCKER_CONFIG.
		var st struct {
			Dir      string
			Contexts []struct {
				Name, Socket string
				KeyLoaded    bool
			}
		}
		if err := json.Unmarshal([]byte(e.MustTLS("agent", "status", "--format", "json").Stdout), &st); err != nil {
			t.Fatal(err)
		}
		if st.Dir == "" || len(st.Contexts) != 1 || st.Contexts[0].Name != "ag" || !st.Contexts[0].KeyLoaded || filepath.Dir(st.Contexts[0].Socket) != st.Dir {
			t.Fatalf("agent status --format json: %+v", st)
		}
		dirs := []string{e.ConfigDir, e.Home, st.Dir}
		for _, dir := range dirs {
			_ = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
				if err != nil || de.IsDir() || de.Type()&fs.ModeSocket != 0 {
					return nil
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return nil
				}
				if bytes.Contains(b, der) {
					t.Errorf("%s holds the key's DER", p)
				}
				for _, l := range lines {
					if bytes.Contains(b, []byte(l)) {
						t.Errorf("%s holds the key in PEM", p)
						break
					}
				}
				return nil
			})
		}
	})

	t.Run("another uid cannot use the socket", func(t *testing.T) {
		sock := strings.TrimPrefix(strings.TrimSpace(e.Docker("context", "inspect", "ag", "--format", "{{.Endpoints.docker.Host}}").Stdout), "unix://")
		fi, err := os.Stat(sock)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket mode: %v %v", fi, err)
		}
		if di, _ := os.Stat(filepath.Dir(sock)); di.Mode().Perm() != 0o700 {
			t.Fatalf("socket dir mode %v", di.Mode())
		}
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "docker", "-H", "unix://"+sock, "version", "--format", "{{.Server.Version}}")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/tmp", "DOCKER_CONFIG=/tmp/nobody-docker-config"}
		out, err := cmd.CombinedOutput()
		if err == nil || strings.Contains(string(out), "20.") {
			t.Fatalf("nobody used the agent's socket:\n%s", out)
		}
		if !strings.Contains(string(out), "permission denied") {
			t.Fatalf("unexpected refusal: %s", out)
		}
	})

	t.Run("agent lock, then the keyring unreachable", func(t *testing.T) {
		if r := e.MustTLS("agent", "lock"); !strings.Contains(r.Stdout, "Dropped 1 key") {
			t.Fatalf("agent lock: %s", r)
		}
		e.MustTLS("agent", "stop")
		waitGone(t, e)
		// An agent whose Secret Service cannot be reached (a locked
		// gnome-keyring cannot be driven headless here): the client's
		// connection closes and the agent's log says why.
		e.extraEnv = append(e.extraEnv, "DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent/bus")
		e.MustTLS("agent", "--keyring-timeout", "2s")
		r := ver()
		e.extraEnv = e.extraEnv[:len(e.extraEnv)-1]
		// The docker CLI shows the agent's reason, not a reset connection.
		if r.Code == 0 || !strings.Contains(r.Stderr, "Error response from daemon: docker-tls agent: the key of context ag is not available") ||
			!strings.Contains(r.Stderr, "unlock the keyring key store and retry") {
			t.Fatalf("docker without a key: %s", r)
		}
		logPath := filepath.Join(agentDirOf(t, e), "agent.log")
		logData, _ := os.ReadFile(logPath)
		if !strings.Contains(string(logData), "OS keyring is not available") {
			t.Fatalf("agent log does not say why:\n%s", logData)
		}
		e.MustTLS("agent", "stop")
		waitGone(t, e)
	})

	t.Run("a killed agent's sockets are cleaned up on the next start", func(t *testing.T) {
		e.Secrets = append(e.Secrets, "agent-must-not-inherit-this")
		e.Setenv("DOCKER_TLS_CA_PASSPHRASE", "agent-must-not-inherit-this")
		e.MustTLS("agent")
		st := e.MustTLS("agent", "status", "--format", "{{.PID}}")
		pid, err := strconv.Atoi(strings.TrimSpace(st.Stdout))
		if err != nil || pid <= 0 {
			t.Fatalf("agent status --format {{.PID}}: %s", st.Stdout)
		}
		// The long-lived agent holds no secret from the environment it was started in.
		if environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err != nil || bytes.Contains(environ, []byte("agent-must-not-inherit-this")) {
			t.Fatalf("agent environment: %v (contains the passphrase: %v)", err, bytes.Contains(environ, []byte("agent-must-not-inherit-this")))
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		time.Sleep(300 * time.Millisecond)
		if r := ver(); r.Code == 0 {
			t.Fatal("docker worked through a killed agent")
		}
		e.MustTLS("agent")
		if r := ver(); r.Code != 0 {
			logData, _ := os.ReadFile(filepath.Join(agentDirOf(t, e), "agent.log"))
			t.Fatalf("docker through the restarted agent: %s\nagent log:\n%s", r, logData)
		}
	})

	t.Run("engine restarted mid-stream", func(t *testing.T) {
		events := e.Start("docker", "--context", "ag", "events")
		time.Sleep(500 * time.Millisecond)
		d.Stop(t)
		select {
		case <-events.done:
		case <-time.After(30 * time.Second):
			t.Fatal("docker events did not end when the engine stopped")
		}
		if events.exit == 0 {
			t.Fatalf("docker events ended without an error:\n%s", events.Output())
		}
		// While the engine is down the agent answers for it, saying so.
		down := ver()
		if down.Code == 0 || !strings.Contains(down.Stderr, "docker-tls agent: cannot connect to the engine of context ag at "+d.Host) ||
			!strings.Contains(down.Stderr, "docker tls verify ag says why") {
			t.Fatalf("docker while the engine is down: %s", down)
		}
		if rep, rr := verifyJSON(t, e, "ag", "--timeout", "2s"); rr.Code == 0 {
			t.Fatalf("verify while the engine is down: %s", rr)
		} else {
			expectCheck(t, rep[0], "agent", "fail", "the agent cannot relay: cannot connect to the engine")
		}
		stls.Port = d.Port
		StartDockerd(t, stls)
		// The dockerd started here stops with this subtest, so this runs last.
		requireOK(t, ver()) // the same agent keeps serving
	})

	// rm takes the socket away at once, not at the agent's next rescan.
	sock := filepath.Join(agentDirOf(t, e), "ag.sock")
	e.MustTLS("rm", "--force", "ag")
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket still there after rm: %v", err)
	}
}

func agentDirOf(t *testing.T, e *Env) string {
	t.Helper()
	sock := strings.TrimPrefix(strings.TrimSpace(e.Docker("context", "inspect", "ag", "--format", "{{.Endpoints.docker.Host}}").Stdout), "unix://")
	return filepath.Dir(sock)
}

func waitGone(t *testing.T, e *Env) {
	t.Helper()
	for range 100 {
		if r := e.TLS("agent", "status"); r.Code != 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the agent did not stop")
}

// TestAgentInstall writes the systemd user unit through the real binary,
// installed under a path with a space, % and $ (what a unit file must
// escape), and has systemd itself check it: systemd-analyze verify resolves
// the quoting and specifiers and finds the binary it would start.
func TestAgentInstall(t *testing.T) {
	need(t, "systemd-analyze")
	e := NewEnv(t)
	odd := filepath.Join(e.Dir, "bin 100%b $HOME")
	exe := filepath.Join(odd, "docker-tls")
	if err := os.MkdirAll(odd, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(pluginBinary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	install := func(args ...string) Result { return e.Run(nil, exe, append([]string{"agent", "install"}, args...)...) }
	unit := filepath.Join(e.Home, ".config", "systemd", "user", "docker-tls-agent.service")
	verify := func() {
		t.Helper()
		out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
	r := install()
	if r.Code != 0 || !strings.Contains(r.Stdout, "Wrote "+unit) || !strings.Contains(r.Stdout, "systemctl --user enable --now docker-tls-agent") {
		t.Fatalf("install: %s", r)
	}
	first, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	if want := `Environment="DOCKER_CONFIG=` + e.ConfigDir + `"`; !strings.Contains(string(first), want) {
		t.Fatalf("unit lacks %q:\n%s", want, first)
	}
	verify()

	if r := install(); r.Code != 0 || !strings.Contains(r.Stdout, "already installed and unchanged") {
		t.Fatalf("second install: %s", r)
	}
	// Other settings never replace a unit silently.
	requireFail(t, install("--idle-lock", "8h"), "exists with other settings", "--force")
	if now, _ := os.ReadFile(unit); !bytes.Equal(now, first) {
		t.Fatalf("a refused install changed the unit:\n%s", now)
	}
	requireOK(t, install("--idle-lock", "8h", "--force"))
	if now, _ := os.ReadFile(unit); !strings.Contains(string(now), `"agent" "--foreground" "--idle-lock" "8h0m0s"`) {
		t.Fatalf("forced install:\n%s", now)
	}
	verify()
}
