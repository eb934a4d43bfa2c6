package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// The crash suite kills docker-tls with SIGKILL at every step boundary of
// every command that changes more than one store, and at random moments,
// against the real Secret Service; after each kill it checks what a user
// would find, then that the next command leaves nothing behind.

// crashScenario is one command killed over and over, and the state it
// starts from.
type crashScenario struct {
	name  string
	setup func(e *Env) // brings the Env to the command's starting state, whatever a kill left
	args  []string
}

const crashCtx = "victim"

func ensureContext(e *Env, agentMode bool) {
	e.t.Helper()
	c := e.TLS("ls", "--format", "{{.Name}} {{.Agent}}")
	line := ""
	for _, l := range strings.Split(c.Stdout, "\n") {
		if strings.HasPrefix(l, crashCtx+" ") {
			line = l
		}
	}
	if line != "" && strings.TrimSpace(strings.TrimPrefix(line, crashCtx)) != "" == agentMode {
		return
	}
	args := []string{"context", "create", crashCtx, "--host", "tcp://127.0.0.1:2376", "--issue", "--force"}
	if agentMode {
		args = append(args, "--agent")
	}
	e.MustTLS(args...)
}

func crashScenarios() []crashScenario {
	absent := func(e *Env) { e.TLS("rm", "--force", crashCtx) }
	present := func(e *Env) { ensureContext(e, false) }
	keysIn := func(kind string) func(e *Env) {
		return func(e *Env) {
			ensureContext(e, false)
			e.MustTLS("keys", "migrate", "--to", kind)
		}
	}
	return []crashScenario{
		{"context create", absent, []string{"context", "create", crashCtx, "--host", "tcp://127.0.0.1:2376", "--issue"}},
		{"context create --force", present, []string{"context", "create", crashCtx, "--host", "tcp://127.0.0.1:2377", "--issue", "--force"}},
		{"renew", present, []string{"renew", crashCtx}},
		{"renew --rekey", present, []string{"renew", crashCtx, "--rekey"}},
		{"rm", present, []string{"rm", "--force", crashCtx}},
		{"lock --agent", present, []string{"lock", "--agent", crashCtx}},
		{"keys migrate --to file", keysIn("keyring"), []string{"keys", "migrate", "--to", "file"}},
		{"keys migrate --to keyring", keysIn("file"), []string{"keys", "migrate", "--to", "keyring"}},
		{"ca init --force", func(e *Env) {}, []string{"ca", "init", "spare", "--force"}},
	}
}

// runCrash runs the crashtest build of docker-tls standalone, killed at
// step (or, with step "", at a random moment up to maxDelay, or not at all
// when maxDelay is 0). It reports whether the process was killed and the
// steps it logged.
func (e *Env) runCrash(step string, maxDelay time.Duration, args ...string) (killed bool, steps []string) {
	e.t.Helper()
	log := filepath.Join(e.Dir, "crash-steps.log")
	_ = os.Remove(log)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, crashBinary, args...)
	cmd.Env = append(e.environ(), "DOCKER_TLS_TEST_CRASH_LOG="+log, "DOCKER_TLS_TEST_CRASH_AT="+step)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	if step == "" && maxDelay > 0 {
		time.Sleep(rand.N(maxDelay))
		_ = cmd.Process.Signal(syscall.SIGKILL)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			killed = true
		} else if step != "" || maxDelay == 0 {
			e.t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
	} else if err != nil {
		e.t.Fatal(err)
	}
	e.assertNoSecrets(Result{Args: args, Stdout: out.String()})
	data, _ := os.ReadFile(log)
	for _, s := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if s != "" && !slices.Contains(steps, s) {
			steps = append(steps, s)
		}
	}
	return killed, steps
}

// keyringEntries lists the user names (key ids) of every docker-tls entry
// in the Secret Service, read with secret-tool, not with docker-tls. The
// secrets secret-tool prints are parsed here and never shown.
func keyringEntries(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("secret-tool", "search", "--all", "--unlock", "service", "docker-tls").CombinedOutput()
	if err != nil && len(out) > 0 && !strings.Contains(string(out), "No matching") {
		// secret-tool exits 1 when nothing matches
		if !bytes.Contains(out, []byte("attribute.")) {
			t.Fatalf("secret-tool: %v (%d bytes of output)", err, len(out))
		}
	}
	var ids []string
	for _, l := range strings.Split(string(out), "\n") {
		if id, ok := strings.CutPrefix(strings.TrimSpace(l), "attribute.username = "); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

type keyRow struct{ ID, Store, Owner, Status string }

func (e *Env) keyRows() []keyRow {
	e.t.Helper()
	r := e.MustTLS("keys", "ls", "--format", "json")
	var rows []keyRow
	for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		if l == "" {
			continue
		}
		var k keyRow
		if err := json.Unmarshal([]byte(l), &k); err != nil {
			e.t.Fatalf("keys ls json: %v: %s", err, l)
		}
		rows = append(rows, k)
	}
	return rows
}

// keyMaterialOutside lists files under DOCKER_CONFIG holding private key
// material anywhere but the file key store and live contexts' key.pem;
// allowScratch also accepts the 0700 scratch directories that the next
// command empties.
func (e *Env) keyMaterialOutside(allowScratch bool) []string {
	var bad []string
	keysDir := filepath.Join(e.ConfigDir, "tls", "keys")
	scratch := []string{filepath.Join(e.ConfigDir, "tls", "tmp"), filepath.Join(keysDir, ".tmp")}
	plugins := filepath.Join(e.ConfigDir, "cli-plugins")
	_ = filepath.WalkDir(e.ConfigDir, func(p string, d os.DirEntry, err error) error {
		if p == plugins {
			return filepath.SkipDir // the executables, which name PEM blocks
		}
		if err != nil || d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(data, []byte("PRIVATE KEY")) {
			return nil
		}
		switch {
		case filepath.Dir(p) == keysDir && strings.HasSuffix(p, ".pem") && !strings.HasPrefix(d.Name(), "."):
		case d.Name() == "key.pem" && strings.HasPrefix(p, filepath.Join(e.ConfigDir, "contexts", "tls")+"/") && filepath.Base(filepath.Dir(p)) == "docker":
		case allowScratch && (strings.HasPrefix(p, scratch[0]+"/") || strings.HasPrefix(p, scratch[1]+"/")):
		default:
			rel, _ := filepath.Rel(e.ConfigDir, p)
			bad = append(bad, rel)
		}
		return nil
	})
	return bad
}

// checkAfterCrash is what a user finds after a kill, and after the next
// command. baseline are keyring entries that other tests left.
func (e *Env) checkAfterCrash(what string, baseline []string) {
	t := e.t
	t.Helper()
	// Right after the kill: the docker CLI and docker tls ls work, and
	// every keyring entry docker-tls made is one keys ls names.
	requireOK(t, e.Docker("context", "ls"))
	requireOK(t, e.TLS("ls"))
	listed := map[string]bool{}
	for _, k := range e.keyRows() {
		listed[k.ID] = true
	}
	for _, id := range keyringEntries(t) {
		if !listed[id] && !slices.Contains(baseline, id) {
			t.Fatalf("%s: keyring entry %s is not listed by docker tls keys ls", what, id)
		}
	}
	if bad := e.keyMaterialOutside(true); len(bad) > 0 {
		t.Fatalf("%s: private key material outside the key store: %v", what, bad)
	}
	// What the docker CLI loads is whole: the TLS directory is exchanged in
	// one step, so key.pem is always the key of cert.pem. (docker-tls's own
	// summary in meta.json is written next and may lag until the next
	// command; that is checked after recovery below.)
	if r := e.Docker("context", "inspect", crashCtx, "--format", "{{.Storage.TLSPath}}"); r.Code == 0 {
		dir := filepath.Join(strings.TrimSpace(r.Stdout), "docker")
		certPEM, cerr := os.ReadFile(filepath.Join(dir, "cert.pem"))
		keyPEM, kerr := os.ReadFile(filepath.Join(dir, "key.pem"))
		if cerr == nil && kerr == nil {
			cert, err := pki.ParseCertificate(certPEM)
			if err != nil {
				t.Fatalf("%s: cert.pem: %v", what, err)
			}
			key, err := pki.ParsePrivateKey(keyPEM, nil)
			if err != nil {
				t.Fatalf("%s: key.pem: %v", what, err)
			}
			if err := pki.CheckKeyMatch(cert, key); err != nil {
				t.Fatalf("%s: the docker CLI would load a mismatched pair: %v", what, err)
			}
		}
	}
	// The next command recovers: nothing is pending, nothing orphaned.
	prune := e.MustTLS("keys", "prune", "--dry-run")
	if strings.TrimSpace(prune.Stdout) != "Nothing to prune" {
		t.Fatalf("%s: after recovery, prune would still remove:\n%s", what, prune.Stdout)
	}
	for _, d := range []string{"tls/journal", "tls/tmp", "tls/keys/.tmp"} {
		if names, _ := os.ReadDir(filepath.Join(e.ConfigDir, d)); len(names) != 0 {
			t.Fatalf("%s: %s still holds %d entries after recovery", what, d, len(names))
		}
	}
	if bad := e.keyMaterialOutside(false); len(bad) > 0 {
		t.Fatalf("%s: private key material outside the key store after recovery: %v", what, bad)
	}
	rows := e.keyRows()
	for _, k := range rows {
		if k.Status != "ok" {
			t.Fatalf("%s: after recovery key %s is %s", what, k.ID, k.Status)
		}
	}
	keyringIDs := map[string]bool{}
	for _, k := range rows {
		if k.Store == "keyring" {
			keyringIDs[k.ID] = true
		}
	}
	for _, id := range keyringEntries(t) {
		if !keyringIDs[id] && !slices.Contains(baseline, id) {
			t.Fatalf("%s: keyring entry %s survived recovery without an owner", what, id)
		}
	}
	// The context is absent or whole, by docker-tls's own account too.
	if ls := e.MustTLS("ls", "-q"); strings.Contains(ls.Stdout, crashCtx) {
		v := e.TLS("verify", "--offline", crashCtx, "--format", "json")
		if strings.Contains(v.Stdout, `"status": "fail"`) {
			t.Fatalf("%s: the context is not whole after recovery:\n%s", what, v.Stdout)
		}
	}
	// The CAs still sign.
	requireOK(t, e.TLS("client", "issue", "probe", "--out", filepath.Join(e.Dir, "probe-"+fmt.Sprint(time.Now().UnixNano()))))
}

// TestCrashAtEveryStep kills each multi-store command at each step it
// passes, then at random moments, and checks the stores after each kill.
func TestCrashAtEveryStep(t *testing.T) {
	need(t, "docker", "secret-tool")
	RequireKeyring(t)
	if crashBinary == "" {
		t.Skip("the crashtest build of docker-tls did not build")
	}
	e := NewEnv(t)
	baseline := keyringEntries(t)
	e.MustTLS("ca", "init")
	e.MustTLS("ca", "init", "spare")
	kills, random := 0, 0
	for _, sc := range crashScenarios() {
		sc.setup(e)
		killed, steps := e.runCrash("", 0, sc.args...)
		if killed || len(steps) == 0 {
			t.Fatalf("%s: a run without a kill logged no steps (killed=%v)", sc.name, killed)
		}
		e.checkAfterCrash(sc.name+" (no kill)", baseline)
		for _, step := range steps {
			sc.setup(e)
			if killed, _ := e.runCrash(step, 0, sc.args...); !killed {
				t.Fatalf("%s: not killed at %s", sc.name, step)
			}
			kills++
			e.checkAfterCrash(sc.name+" killed at "+step, baseline)
		}
	}
	// Random moments, with the file key store: a SIGKILL in the middle of a
	// D-Bus call to gnome-keyring can leave the shared test keyring unable
	// to unlock for every later test, so random kills stay off the keyring
	// (step boundaries above fall between keyring calls).
	f := NewEnv(t)
	f.UseFileKeystore()
	f.MustTLS("ca", "init")
	f.MustTLS("ca", "init", "spare")
	fileBaseline := keyringEntries(t)
	for _, sc := range crashScenarios() {
		if strings.HasPrefix(sc.name, "keys migrate") {
			continue
		}
		for range 5 {
			sc.setup(f)
			if killed, _ := f.runCrash("", 40*time.Millisecond, sc.args...); killed {
				random++
			}
			f.checkAfterCrash(sc.name+" killed at random", fileBaseline)
		}
	}
	t.Logf("killed %d times at step boundaries and %d times at random moments; nothing left behind", kills, random)
	if kills < 30 {
		t.Fatalf("only %d step kills", kills)
	}
}
