package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// TestAuthzPluginOnEngine: the engine side of a policy on a real host. The
// docker-tls binary serves the policy as dockerd's authorization plugin,
// turned on by a reload; the real docker CLI, through contexts whose
// certificates carry users and groups, is allowed or refused by role, each
// refusal in one sentence; the host's own socket still works; the audit
// trail names each refused call. (engine policy set will install what this
// test installs by hand.)
func TestAuthzPluginOnEngine(t *testing.T) {
	t.Parallel() // own host; mostly waiting on restarts
	e := NewEnv(t)
	c := NewSSHClient(t)
	h := StartEngineHosts(t, c, 1)[0]
	e.MustTLS("ca", "init")
	requireOK(t, setupEngine(e, c, h, "root", "--name", "pol", "--client-name", "admin-1", "--group", "admins"))
	endpoint := strings.TrimSpace(e.MustTLS("ls", "--format", `{{if eq .Name "pol"}}{{.Host}}{{end}}`).Stdout)
	for _, id := range [][]string{{"alice", "--group", "ops"}, {"bob"}, {"nobody"}} {
		e.MustTLS(append([]string{"context", "create", id[0], "--host", endpoint, "--issue", "--client-name", id[0]}, id[1:]...)...)
	}
	busyboxImage(t, e, "pol")

	bin, err := os.ReadFile(pluginBinary)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := h.As("root", "cat > /usr/local/bin/docker-tls && chmod 0755 /usr/local/bin/docker-tls", bin); err != nil {
		t.Fatalf("copy the binary: %v\n%s", err, out)
	}
	cfg := `{"engine":"pol","policy":{"grants":[{"subject":"group:admins","role":"admin"},{"subject":"group:ops","role":"operator"},{"subject":"user:bob","role":"viewer"}]}}`
	if out, err := h.As("root", "install -d -m 0700 /etc/docker-tls && cat > /etc/docker-tls/policy.json", []byte(cfg)); err != nil {
		t.Fatalf("write the policy: %v\n%s", err, out)
	}
	h.MustRoot("systemd-run --unit docker-tls-authz --property Restart=always /usr/local/bin/docker-tls authz-plugin --config /etc/docker-tls/policy.json")
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := h.Root("test -S /run/docker/plugins/docker-tls.sock"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin did not listen within 15 s:\n%s", h.MustRoot("journalctl -u docker-tls-authz --no-pager | tail -20"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	dj := map[string]any{}
	if raw, err := h.Root("cat /etc/docker/daemon.json 2>/dev/null"); err == nil && strings.TrimSpace(raw) != "" {
		if err := json.Unmarshal([]byte(raw), &dj); err != nil {
			t.Fatalf("daemon.json: %v\n%s", err, raw)
		}
	}
	dj["authorization-plugins"] = []string{"docker-tls"}
	data, _ := json.Marshal(dj)
	if out, err := h.As("root", "cat > /etc/docker/daemon.json && systemctl reload docker", data); err != nil {
		t.Fatalf("turn the plugin on: %v\n%s", err, out)
	}
	// The reload is asynchronous: wait until a refusal shows it is on.
	deadline = time.Now().Add(20 * time.Second)
	for {
		r := e.Docker("--context", "nobody", "ps")
		if r.Code != 0 && strings.Contains(r.Stderr, "docker-tls") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin is not consulted 20 s after the reload: %s\n%s", r, h.MustRoot("journalctl -u docker --no-pager | tail -20"))
		}
		time.Sleep(200 * time.Millisecond)
	}

	allowed := func(ctx string, args ...string) {
		t.Helper()
		requireOK(t, e.Docker(append([]string{"--context", ctx}, args...)...))
	}
	refused := func(ctx string, want []string, args ...string) {
		t.Helper()
		r := e.Docker(append([]string{"--context", ctx}, args...)...)
		if r.Code == 0 {
			t.Fatalf("docker --context %s %s was allowed: %s", ctx, strings.Join(args, " "), r)
		}
		t.Logf("docker --context %s %s: %s", ctx, strings.Join(args, " "), strings.TrimSpace(r.Stderr))
		for _, w := range want {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("docker --context %s %s: %q is not in the refusal:\n%s", ctx, strings.Join(args, " "), w, r.Stderr)
			}
		}
	}
	allowed("bob", "ps")
	allowed("bob", "images")
	allowed("bob", "info")
	refused("bob", []string{`"bob" has the role viewer`, "needs operator", "docker tls engine policy set pol --grant user:bob=operator"},
		"run", "--rm", "--network", "none", "busybox:local", "true")
	allowed("alice", "run", "--rm", "--network", "none", "busybox:local", "echo", "hi")
	refused("alice", []string{`"alice" (groups ops) has the role operator`, "needs admin", "privileged"},
		"run", "--rm", "--privileged", "busybox:local", "true")
	refused("alice", []string{"needs admin", "bind-mounts a path of the host"},
		"run", "--rm", "-v", "/:/host", "busybox:local", "true")
	refused("alice", []string{"needs admin", "namespace of the host"},
		"run", "--rm", "--pid", "host", "busybox:local", "true")
	refused("nobody", []string{`"nobody" has no role`}, "ps")
	// An admin may create a privileged container (the test host, itself a
	// container, could not start one).
	allowed("pol", "create", "--name", "priv", "--privileged", "busybox:local", "true")
	allowed("pol", "rm", "priv")
	// The host's own socket carries no certificate: allowed by default.
	h.MustRoot("docker ps -q")

	audit := h.MustRoot("cat /var/log/docker-tls/audit.log")
	for _, w := range []string{`"user":"bob"`, `"allow":false`, `"needs":"admin"`, `"user":"alice"`, `"rule":"group:admins"`} {
		if !strings.Contains(audit, w) {
			t.Errorf("the audit trail has no %s:\n%s", w, audit)
		}
	}
	if mode := strings.TrimSpace(h.MustRoot("stat -c %a /var/log/docker-tls/audit.log")); mode != "600" {
		t.Errorf("audit trail mode %s, want 600", mode)
	}
}
