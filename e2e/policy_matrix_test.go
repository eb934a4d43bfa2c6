package e2e

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// matrixCall is one row of the role table as the README states it: a
// docker command, the role it needs, and words the refusal must give as
// the reason. {ctx} in an argument is the context's name, so each
// identity works on objects of its own.
type matrixCall struct {
	args   []string
	needs  string
	reason string
	// dockerdMayFail: the call is allowed, but dockerd itself may refuse
	// it on this host (no swarm, no such plugin, no privileges inside the
	// nspawn container); only a refusal by the policy would be wrong.
	dockerdMayFail bool
	// readsFirst: the docker CLI reads the object before the call (exec
	// inspects the container), so a caller with no role at all is
	// refused that read.
	readsFirst bool
}

// matrixIdentity is a context and the identity its certificate carries.
type matrixIdentity struct {
	ctx, user, groups, role string
}

var roleRank = map[string]int{"none": 0, "viewer": 1, "operator": 2, "admin": 3}

// roleMatrix runs every call of the table through the real docker CLI as
// each identity, and checks it is allowed or refused as the table says,
// each refusal naming who called, the role they have, the role the call
// needs, why, and the policy set line that would allow it. The engine is
// named engine and its policy grants the roles in ids. It returns how
// many calls to containers/create each identity below admin had refused.
func roleMatrix(t *testing.T, e *Env, engine string, ids []matrixIdentity) int {
	t.Helper()
	dir := t.TempDir()
	in := dir + "/in.txt"
	if err := os.WriteFile(in, []byte("copied in\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := ids[len(ids)-1].ctx
	requireOK(t, e.Docker("--context", admin, "run", "-d", "--name", "m-box", "--network", "none", "busybox:local", "sleep", "600"))
	requireOK(t, e.Docker("--context", admin, "volume", "create", "m-vol"))
	create := func(opts ...string) []string {
		return append(append([]string{"create", "--network", "none"}, opts...), "busybox:local", "true")
	}
	calls := []matrixCall{
		// viewer: reads metadata, logs and events
		{args: []string{"version"}, needs: "viewer"},
		{args: []string{"info"}, needs: "viewer"},
		{args: []string{"ps", "-a"}, needs: "viewer"},
		{args: []string{"images"}, needs: "viewer"},
		{args: []string{"inspect", "m-box"}, needs: "viewer"},
		{args: []string{"logs", "m-box"}, needs: "viewer"},
		{args: []string{"top", "m-box"}, needs: "viewer"},
		{args: []string{"stats", "--no-stream", "m-box"}, needs: "viewer"},
		{args: []string{"diff", "m-box"}, needs: "viewer"},
		{args: []string{"image", "inspect", "busybox:local"}, needs: "viewer"},
		{args: []string{"image", "history", "busybox:local"}, needs: "viewer"},
		{args: []string{"events", "--since", "1m", "--until", "1s"}, needs: "viewer"},
		{args: []string{"system", "df"}, needs: "viewer"},
		{args: []string{"network", "ls"}, needs: "viewer"},
		{args: []string{"volume", "ls"}, needs: "viewer"},
		{args: []string{"volume", "inspect", "m-vol"}, needs: "viewer"},
		{args: []string{"plugin", "ls"}, needs: "viewer"},
		// operator: contents, streams and changes that do not give root
		{args: []string{"cp", "m-box:/bin/busybox", dir + "/bb-{ctx}"}, needs: "operator", reason: "reads container contents"},
		{args: []string{"cp", in, "m-box:/tmp/in-{ctx}"}, needs: "operator", reason: "changes the engine"},
		{args: []string{"export", "-o", dir + "/export-{ctx}.tar", "m-box"}, needs: "operator", reason: "reads container contents"},
		{args: []string{"save", "-o", dir + "/save-{ctx}.tar", "busybox:local"}, needs: "operator", reason: "reads container contents"},
		{args: []string{"exec", "m-box", "echo", "hi"}, needs: "operator", reason: "changes the engine", readsFirst: true},
		{args: []string{"run", "--rm", "--network", "none", "busybox:local", "echo", "hi"}, needs: "operator", reason: "changes the engine"},
		{args: []string{"create", "--name", "m-{ctx}", "--network", "none", "-v", "m-vol:/data", "busybox:local", "sleep", "300"}, needs: "operator", reason: "changes the engine"},
		{args: []string{"start", "m-{ctx}"}, needs: "operator", reason: "changes the engine"},
		{args: []string{"rename", "m-{ctx}", "n-{ctx}"}, needs: "operator", reason: "changes the engine"},
		{args: []string{"stop", "-t", "0", "n-{ctx}"}, needs: "operator", reason: "changes the engine"},
		{args: []string{"commit", "n-{ctx}", "img-{ctx}:1"}, needs: "operator", reason: "changes the engine"},
		{args: []string{"tag", "busybox:local", "tag-{ctx}:1"}, needs: "operator", reason: "changes the engine"},
		{args: []string{"rmi", "tag-{ctx}:1"}, needs: "operator", reason: "changes the engine"},
		{args: []string{"rm", "-f", "n-{ctx}"}, needs: "operator", reason: "changes the engine"},
		{args: []string{"volume", "create", "v-{ctx}"}, needs: "operator", reason: "changes the engine"},
		{args: []string{"volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=1m", "t-{ctx}"}, needs: "operator", reason: "changes the engine"},
		{args: []string{"volume", "rm", "v-{ctx}"}, needs: "operator", reason: "changes the engine"},
		// admin: what gives root on the host
		{args: create("--privileged"), needs: "admin", reason: "a privileged container is root on the host"},
		{args: create("-v", "/:/host"), needs: "admin", reason: "bind-mounts a path of the host"},
		{args: create("--mount", "type=bind,src=/etc,dst=/e"), needs: "admin", reason: "bind-mounts a path of the host"},
		{args: create("--pid", "host"), needs: "admin", reason: "joins a namespace of the host"},
		{args: create("--ipc", "host"), needs: "admin", reason: "joins a namespace of the host"},
		{args: create("--uts", "host"), needs: "admin", reason: "joins a namespace of the host"},
		{args: create("--cap-add", "NET_ADMIN"), needs: "admin", reason: "adds capabilities"},
		{args: create("--device", "/dev/null"), needs: "admin", reason: "gets devices of the host"},
		{args: create("--security-opt", "seccomp=unconfined"), needs: "admin", reason: "turns off a security profile"},
		{args: []string{"exec", "--privileged", "m-box", "echo", "hi"}, needs: "admin", reason: "a privileged exec is root on the host", dockerdMayFail: true, readsFirst: true},
		{args: []string{"volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", "device=/etc", "b-{ctx}"}, needs: "admin", reason: "o=bind mounts a path of the host"},
		{args: []string{"swarm", "leave", "--force"}, needs: "admin", reason: "changes the swarm", dockerdMayFail: true},
		{args: []string{"plugin", "rm", "no-such-plugin"}, needs: "admin", reason: "plugins run with the engine's privileges", dockerdMayFail: true},
	}
	refusedCreates := 0
	for _, c := range calls {
		if c.needs == "admin" && c.args[0] == "create" {
			refusedCreates++
		}
	}
	var allowedN, refusedN int
	var mu sync.Mutex
	for _, c := range calls {
		// The identities are independent (each has its own objects), so
		// one call runs as all of them at once.
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				args := make([]string, len(c.args))
				for i, a := range c.args {
					args[i] = strings.ReplaceAll(a, "{ctx}", id.ctx)
				}
				cmd := "docker --context " + id.ctx + " " + strings.Join(args, " ")
				r := e.Docker(append([]string{"--context", id.ctx}, args...)...)
				byPolicy := strings.Contains(r.Stderr, "authorization denied by plugin docker-tls")
				if roleRank[id.role] >= roleRank[c.needs] {
					mu.Lock()
					allowedN++
					mu.Unlock()
					if byPolicy || (r.Code != 0 && !c.dockerdMayFail) {
						t.Errorf("%s (%s): should be allowed: %s", cmd, id.role, r)
					}
					return
				}
				mu.Lock()
				refusedN++
				mu.Unlock()
				have := "has no role"
				if id.role != "none" {
					have = "has the role " + id.role
				}
				who := fmt.Sprintf("%q", id.user)
				if id.groups != "" {
					who += " (groups " + id.groups + ")"
				}
				needs, reason := c.needs, c.reason
				if c.readsFirst && id.role == "none" {
					needs = "viewer"
				}
				if needs == "viewer" {
					reason = "it only reads"
				}
				wants := []string{who + " " + have, "needs " + needs, reason,
					fmt.Sprintf("docker tls engine policy set %s --grant user:%s=%s", engine, id.user, needs)}
				if r.Code == 0 || !byPolicy {
					t.Errorf("%s (%s): should be refused by the policy: %s", cmd, id.role, r)
					return
				}
				for _, w := range wants {
					if !strings.Contains(r.Stderr, w) {
						t.Errorf("%s (%s): the refusal does not say %q:\n%s", cmd, id.role, w, r.Stderr)
					}
				}
			}()
		}
		wg.Wait()
	}
	t.Logf("role matrix: %d calls x %d identities: %d allowed, %d refused, as the table says unless reported above", len(calls), len(ids), allowedN, refusedN)
	return refusedCreates
}
