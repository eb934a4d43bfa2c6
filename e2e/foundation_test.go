package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPluginDiscovery: installed in DOCKER_CONFIG/cli-plugins, docker lists
// the plugin and runs it as `docker tls`; run directly it takes the same
// words and the docker CLI's global flags.
func TestPluginDiscovery(t *testing.T) {
	need(t, "docker")
	e := NewEnv(t)
	help := e.Docker("--help")
	requireOK(t, help)
	if !strings.Contains(help.Stdout, "tls*") || !strings.Contains(help.Stdout, "Mutual TLS") {
		t.Fatalf("docker --help does not list the plugin:\n%s", help.Stdout)
	}
	// docker info fails without a daemon but still reports client plugins.
	info := e.Docker("info", "--format", "{{range .ClientInfo.Plugins}}{{.Name}} {{.Vendor}} {{.Path}}\n{{end}}")
	if !strings.Contains(info.Stdout, "tls docker-tls "+filepath.Join(e.ConfigDir, "cli-plugins", "docker-tls")) {
		t.Fatalf("docker info does not list the plugin: %s", info)
	}
	meta := e.Standalone("docker-cli-plugin-metadata")
	requireOK(t, meta)
	var m map[string]any
	if err := json.Unmarshal([]byte(meta.Stdout), &m); err != nil || m["SchemaVersion"] != "0.1.0" || m["Vendor"] == "" {
		t.Fatalf("metadata %q: %v", meta.Stdout, err)
	}

	requireOK(t, e.TLS("ca", "init"))
	// Standalone, same words, same state.
	ls := e.Standalone("ca", "ls", "--quiet")
	requireOK(t, ls)
	if strings.TrimSpace(ls.Stdout) != "default" {
		t.Fatalf("standalone ca ls: %s", ls)
	}
	// Global --config, before the verb, in both modes.
	other := e.Path("other-config")
	requireOK(t, e.Standalone("--config", other, "ca", "init", "elsewhere", "--keystore", "file"))
	if _, err := os.Stat(filepath.Join(other, "tls", "ca", "elsewhere", "ca.pem")); err != nil {
		t.Fatalf("--config not honoured standalone: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(other, "cli-plugins"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(e.ConfigDir, "cli-plugins", "docker-tls"), filepath.Join(other, "cli-plugins", "docker-tls")); err != nil {
		t.Fatal(err)
	}
	ls = e.Docker("--config", other, "tls", "ca", "ls", "--format", "{{.Name}}")
	requireOK(t, ls)
	if strings.TrimSpace(ls.Stdout) != "elsewhere" {
		t.Fatalf("docker --config … tls ca ls: %s", ls)
	}
	// Unknown verbs fail with a usage error, not a panic.
	r := e.TLS("frobnicate")
	if r.Code == 0 {
		t.Fatalf("unknown verb accepted: %s", r)
	}
}

// TestMutualTLSAgainstRealDockerd is the foundation's proof: a CA, a server
// certificate, a real dockerd --tlsverify, a client certificate, and the
// real docker CLI and curl getting through, while the wrong certificates
// do not.
func TestMutualTLSAgainstRealDockerd(t *testing.T) {
	need(t, "docker")
	needRoot(t)
	need(t, "dockerd")
	e := NewEnv(t)
	requireOK(t, e.TLS("ca", "init"))
	srv := e.Path("server")
	requireOK(t, e.TLS("server", "issue", "localhost", "127.0.0.1", "--out", srv))
	d := StartDockerd(t, ServerDir(srv))

	alice := e.Path("alice")
	requireOK(t, e.TLS("client", "issue", "alice", "--out", alice))
	for _, host := range []string{d.Host, strings.Replace(d.Host, "127.0.0.1", "localhost", 1)} {
		v := e.DockerVia(host, DirTLS(alice), "version", "--format", "{{.Server.Version}}")
		requireOK(t, v)
		if strings.TrimSpace(v.Stdout) == "" {
			t.Fatalf("no server version through %s: %s", host, v)
		}
	}
	// The DOCKER_CERT_PATH layout works as the docker CLI reads it.
	envRun := exec.Command("docker", "version", "--format", "{{.Server.APIVersion}}")
	envRun.Env = append(e.environ(), "DOCKER_HOST="+d.Host, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH="+alice)
	if out, err := envRun.CombinedOutput(); err != nil {
		t.Fatalf("DOCKER_CERT_PATH=%s docker version: %v\n%s", alice, err, out)
	}

	t.Run("curl", func(t *testing.T) {
		need(t, "curl")
		c := DirTLS(alice)
		r := e.Run(nil, "curl", "-sS", "--max-time", "20", "--cacert", c.CA, "--cert", c.Cert, "--key", c.Key, "https://127.0.0.1:"+itoa(d.Port)+"/_ping")
		requireOK(t, r)
		if r.Stdout != "OK" {
			t.Fatalf("_ping said %q", r.Stdout)
		}
		// Without a client certificate dockerd refuses the handshake.
		r = e.Run(nil, "curl", "-sS", "--max-time", "20", "--cacert", c.CA, "https://127.0.0.1:"+itoa(d.Port)+"/_ping")
		if r.Code == 0 {
			t.Fatalf("dockerd answered without a client certificate: %s", r)
		}
	})

	t.Run("client cert from another CA is rejected", func(t *testing.T) {
		requireOK(t, e.TLS("ca", "init", "other"))
		mallory := e.Path("mallory")
		requireOK(t, e.TLS("client", "issue", "mallory", "--ca", "other", "--out", mallory))
		c := DirTLS(mallory)
		c.CA = filepath.Join(alice, "ca.pem") // trusts the right server, presents the wrong client cert
		r := e.DockerVia(d.Host, c, "version", "--format", "{{.Server.Version}}")
		if r.Code == 0 || strings.TrimSpace(r.Stdout) != "" {
			t.Fatalf("dockerd accepted a client certificate from another CA: %s", r)
		}
		if !rejectedByTLS(r.Stderr) {
			t.Fatalf("unexpected failure: %s", r)
		}
	})

	t.Run("serverAuth-only cert is rejected as a client cert", func(t *testing.T) {
		other := e.Path("server-as-client")
		requireOK(t, e.TLS("server", "issue", "client.example.com", "--out", other))
		c := ClientTLS{CA: filepath.Join(alice, "ca.pem"), Cert: filepath.Join(other, "server-cert.pem"), Key: filepath.Join(other, "server-key.pem")}
		r := e.DockerVia(d.Host, c, "version", "--format", "{{.Server.Version}}")
		if r.Code == 0 || strings.TrimSpace(r.Stdout) != "" {
			t.Fatalf("dockerd accepted a certificate without clientAuth: %s", r)
		}
		if !rejectedByTLS(r.Stderr) {
			t.Fatalf("unexpected failure: %s", r)
		}
	})

	t.Run("server name not in the certificate is refused by the client", func(t *testing.T) {
		// 127.0.0.2 is loopback too, but not in the server certificate's SANs.
		host := strings.Replace(d.Host, "127.0.0.1", "127.0.0.2", 1)
		r := e.DockerVia(host, DirTLS(alice), "version", "--format", "{{.Server.Version}}")
		if r.Code == 0 {
			t.Fatalf("client accepted a server certificate without the name it dialled: %s", r)
		}
		if !strings.Contains(r.Stderr, "127.0.0.2") {
			t.Fatalf("unexpected failure: %s", r)
		}
	})
}

// rejectedByTLS reports whether a docker CLI error is dockerd refusing the
// client certificate: a TLS alert, or (when the alert loses the race with
// the client's first write) the connection reset that follows it.
func rejectedByTLS(stderr string) bool {
	for _, s := range []string{"bad certificate", "unknown certificate authority", "certificate required", "connection reset by peer", "broken pipe"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestKeyringDaemonRestart: when the Secret Service daemon of the test
// session dies, the bus starts it again on the next call, unlocked with
// the session's test password (scripts/with-keyring.sh), and the keys
// already stored are still there. Without this one dead daemon fails
// every keyring test that runs after it. Not parallel: the keyring is
// shared, and no other test's call is in flight while this one kills it.
func TestKeyringDaemonRestart(t *testing.T) {
	RequireKeyring(t)
	need(t, "dbus-send")
	e := NewEnv(t)
	requireOK(t, e.TLS("ca", "init"))
	before := secretServicePID(t, e)
	if err := syscall.Kill(before, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the Secret Service daemon (pid %d): %v", before, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(before, 0) == nil && !isZombie(before) {
		if time.Now().After(deadline) {
			t.Fatalf("the Secret Service daemon (pid %d) still runs 10s after SIGKILL", before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Signing reads the CA key, stored before the kill, from the keyring.
	requireOK(t, e.TLS("client", "issue", "alice", "--out", e.Path("alice")))
	if after := secretServicePID(t, e); after == before {
		t.Fatalf("the Secret Service still has pid %d after it was killed", after)
	}
}

// secretServicePID asks the session bus which process owns
// org.freedesktop.secrets.
func secretServicePID(t *testing.T, e *Env) int {
	t.Helper()
	r := e.Run(nil, "dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
		"org.freedesktop.DBus.GetConnectionUnixProcessID", "string:org.freedesktop.secrets")
	requireOK(t, r)
	f := strings.Fields(r.Stdout)
	pid, err := strconv.Atoi(f[len(f)-1])
	if err != nil || pid <= 1 {
		t.Fatalf("no pid in the bus's answer: %s", r)
	}
	return pid
}

// isZombie says whether pid has exited but was not reaped yet (the daemon
// with-keyring.sh started is no child of this test, so it may linger so).
func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// TestDatabaseHelper: the plugin runs what opens no database itself and
// hands the rest to docker-tls-db by execve, so the docker CLI's child is
// the helper, not a parent of it. Without the helper, such a command fails
// in one sentence that names the helper's path, and changes nothing; the
// rest still runs.
func TestDatabaseHelper(t *testing.T) {
	need(t, "docker")
	e := NewEnv(t)
	e.MustTLS("ca", "init")
	helper := filepath.Join(e.ConfigDir, "cli-plugins", "docker-tls.d", "docker-tls-db")

	// Issuing records into the CA's inventory, in the helper.
	requireOK(t, e.TLS("client", "issue", "alice", "--out", e.Path("alice")))
	ls := e.MustTLS("ca", "issued", "ls", "--format", "{{.CN}}")
	if strings.TrimSpace(ls.Stdout) != "alice" {
		t.Fatalf("ca issued ls after client issue: %s", ls)
	}

	// ca serve: the docker CLI's one child is the helper itself.
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	serve := e.Start("docker", "tls", "ca", "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--san", "127.0.0.1")
	serve.WaitFor("Serving CA")
	kids := childrenOf(t, serve.cmd.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("docker tls ca serve: the docker CLI has children %v, want one", kids)
	}
	exe, err := os.Readlink("/proc/" + kids[0] + "/exe")
	if err != nil || exe != helper {
		t.Fatalf("the docker CLI's child runs %q (%v), want the helper %s", exe, err, helper)
	}
	pid, _ := strconv.Atoi(kids[0])
	if grand := childrenOf(t, pid); len(grand) != 0 {
		t.Fatalf("the helper has children %v: the plugin ran it as a child, not by execve", grand)
	}
	serve.Stop()

	// Without the helper.
	if err := os.Rename(helper, helper+".away"); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, e.ConfigDir)
	for _, args := range [][]string{
		{"client", "issue", "bob", "--out", e.Path("bob")},
		{"ca", "token", "--cn", "bob"},
	} {
		r := e.TLS(args...)
		requireFail(t, r, "docker tls "+strings.Join(args[:2], " ")+" opens a CA's database, which docker-tls does through its helper "+helper+": file does not exist: install docker-tls again")
		if n := strings.Count(strings.TrimSpace(r.Stderr), "\n"); n != 0 {
			t.Errorf("%v: %d lines on stderr, want one: %s", args, n+1, r.Stderr)
		}
	}
	if after := snapshot(t, e.ConfigDir); after != before {
		t.Fatalf("a refused command changed DOCKER_CONFIG:\nbefore\n%s\nafter\n%s", before, after)
	}
	if _, err := os.Stat(e.Path("bob")); err == nil {
		t.Fatal("client issue without the helper wrote its output directory")
	}
	ca := e.MustTLS("ca", "ls", "--quiet")
	if strings.TrimSpace(ca.Stdout) != "default" {
		t.Fatalf("ca ls without the helper: %s", ca)
	}
}

// childrenOf lists the pids of pid's children, from every one of its
// threads (a Go program forks from whichever thread runs).
func childrenOf(t *testing.T, pid int) []string {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil || len(tasks) == 0 {
		t.Skipf("no /proc children lists here (%v)", err)
	}
	var kids []string
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err == nil {
			kids = append(kids, strings.Fields(string(data))...)
		}
	}
	return kids
}

// TestNoSecretService: on a machine with no Secret Service (an SSH session,
// a server), the keyring, docker-tls's default key store, is refused before
// anything is recorded: one sentence that says to use the file store, and
// the next command, given --keystore file, runs (it used to be refused
// too, by a recorded intent it could not undo without the keyring).
func TestNoSecretService(t *testing.T) {
	e := NewEnv(t)
	if err := os.Remove(filepath.Join(e.ConfigDir, "config.json")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	e.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+e.Path("no-such-bus"))
	before := snapshot(t, e.ConfigDir)
	for _, args := range [][]string{
		{"ca", "init"},
		{"context", "create", "lab", "--host", "tcp://127.0.0.1:2376", "--issue"},
	} {
		r := e.Standalone(args...)
		requireFail(t, r, "the OS keyring is not available", "use --keystore file on machines without one")
		if n := strings.Count(strings.TrimSpace(r.Stderr), "\n"); n != 0 || strings.Contains(r.Stderr, "undoing") {
			t.Fatalf("%v: want one sentence and nothing to undo: %s", args, r.Stderr)
		}
		if after := snapshot(t, e.ConfigDir); after != before {
			t.Fatalf("%v refused, but changed DOCKER_CONFIG:\nbefore\n%s\nafter\n%s", args, before, after)
		}
		if args[0] == "ca" {
			requireOK(t, e.Standalone("ca", "init", "--keystore", "file"))
			before = snapshot(t, e.ConfigDir)
		}
	}
	requireOK(t, e.Standalone("context", "create", "lab", "--host", "tcp://127.0.0.1:2376", "--issue", "--keystore", "file"))
	if r := e.MustTLS("ls", "--format", "{{.Name}}"); !strings.Contains(r.Stdout, "lab") {
		t.Fatalf("ls after the file-store context: %s", r)
	}
}
