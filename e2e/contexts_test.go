package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// secretToolHas reports whether the real Secret Service holds an entry for
// a docker-tls key id, without printing the secret.
func secretToolHas(t *testing.T, e *Env, id string) bool {
	t.Helper()
	need(t, "secret-tool")
	cmd := exec.Command("secret-tool", "lookup", "service", "docker-tls", "username", id)
	cmd.Env = e.environ()
	out, err := cmd.Output()
	if err != nil {
		return false
	}
	if !strings.HasPrefix(string(out), "pkcs8:") && !strings.HasPrefix(string(out), "rsa-primes:") {
		t.Fatalf("keyring entry %s is not in docker-tls's format", id)
	}
	return true
}

func keyIDOf(t *testing.T, e *Env, owner string) string {
	t.Helper()
	r := e.MustTLS("keys", "ls", "--format", "{{.Owner}} {{.ID}} {{.Store}}")
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == owner {
			return f[1]
		}
	}
	t.Fatalf("no key owned by %s in:\n%s", owner, r.Stdout)
	return ""
}

// TestContextsWithKeyring: from nothing to `docker context use e2e && docker
// info` against a real TLS dockerd, with the keys in a real Secret Service;
// lock, unlock, env and rm behave, and rm leaves nothing behind.
func TestContextsWithKeyring(t *testing.T) {
	need(t, "docker")
	RequireKeyring(t)
	needRoot(t)
	need(t, "dockerd")
	e := NewEnv(t)
	e.MustTLS("ca", "init")
	d, _ := e.StartEngine(t, "server")

	r := e.MustTLS("context", "create", "e2e", "--host", d.Host, "--issue", "--description", "end to end")
	if !strings.Contains(r.Stdout, "keyring key store") {
		t.Fatalf("key not in the keyring: %s", r)
	}
	caKey, ctxKey := keyIDOf(t, e, "ca/default"), keyIDOf(t, e, "context/e2e")
	if !secretToolHas(t, e, caKey) || !secretToolHas(t, e, ctxKey) {
		t.Fatal("keys are not in the Secret Service")
	}
	if files, _ := filepath.Glob(filepath.Join(e.ConfigDir, "tls", "keys", "*.pem")); len(files) != 0 {
		t.Fatalf("keyring keys also written as files: %v", files)
	}

	ver := func() Result { return e.Docker("--context", "e2e", "version", "--format", "{{.Server.Version}}") }
	requireOK(t, ver())
	requireOK(t, e.Docker("context", "use", "e2e"))
	info := e.Docker("info", "--format", "{{.ServerVersion}}")
	requireOK(t, info)
	if strings.TrimSpace(info.Stdout) == "" {
		t.Fatalf("docker info through the current context: %s", info)
	}
	ls := e.MustTLS("ls")
	if !strings.Contains(ls.Stdout, "e2e *") || !strings.Contains(ls.Stdout, "keyring") || !strings.Contains(ls.Stdout, d.Host) {
		t.Fatalf("docker tls ls:\n%s", ls.Stdout)
	}

	e.MustTLS("lock", "e2e")
	if r := ver(); r.Code == 0 {
		t.Fatalf("locked context still works: %s", r)
	}
	if ls := e.MustTLS("ls", "--format", "{{.Name}} {{.Key}}"); !strings.Contains(ls.Stdout, "e2e keyring (locked)") {
		t.Fatalf("ls does not show the lock:\n%s", ls.Stdout)
	}
	e.MustTLS("unlock", "e2e")
	requireOK(t, ver())

	// env: a shell without contexts reaches the engine with the printed variables.
	env := e.MustTLS("env", "e2e", "--shell", "bash")
	if strings.Contains(env.Stdout, "PRIVATE") || !strings.Contains(env.Stdout, "export DOCKER_CERT_PATH=") {
		t.Fatalf("env output:\n%s", env.Stdout)
	}
	// DOCKER_HOST from the environment overrides the current context.
	requireOK(t, e.Docker("context", "use", "default"))
	sh := exec.Command("bash", "-c", env.Stdout+"\ndocker version --format '{{.Server.Version}}'")
	sh.Env = e.environ()
	if out, err := sh.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("docker with docker tls env: %v\n%s\n%s", err, env.Stdout, out)
	}
	requireOK(t, e.Docker("context", "use", "e2e"))

	// rm refuses the current context without --force, then removes everything.
	requireFail(t, e.TLS("rm", "e2e"), "in use")
	requireOK(t, e.Docker("context", "use", "default"))
	requireFail(t, e.TLS("rm", "e2e"), "--force") // no terminal: confirmation needs --force
	e.MustTLS("rm", "--force", "e2e")
	if secretToolHas(t, e, ctxKey) {
		t.Fatal("rm left the key in the keyring")
	}
	if r := e.Docker("context", "inspect", "e2e"); r.Code == 0 {
		t.Fatal("rm left the context")
	}
	if tlsDirs, _ := filepath.Glob(filepath.Join(e.ConfigDir, "contexts", "tls", "*")); len(tlsDirs) != 0 {
		t.Fatalf("rm left TLS files: %v", tlsDirs)
	}
	if !secretToolHas(t, e, caKey) {
		t.Fatal("rm removed the CA key")
	}

	t.Run("import openssl-made files", func(t *testing.T) {
		need(t, "openssl")
		art := e.Path("article")
		articleMaterial(t, art)
		d2 := StartDockerd(t, ServerDir(art))
		before, _ := os.ReadFile(filepath.Join(art, "key.pem"))
		e.MustTLS("import", "article", "--host", d2.Host, "--ca", filepath.Join(art, "ca.pem"), "--cert", filepath.Join(art, "cert.pem"), "--key", filepath.Join(art, "key.pem"))
		requireOK(t, e.Docker("--context", "article", "version", "--format", "{{.Server.Version}}"))
		if after, _ := os.ReadFile(filepath.Join(art, "key.pem")); string(after) != string(before) {
			t.Fatal("import changed the original key file")
		}
		if !secretToolHas(t, e, keyIDOf(t, e, "context/article")) {
			t.Fatal("imported key is not in the keyring")
		}
		// The DOCKER_CERT_PATH layout, with --remove-originals.
		dir := e.Path("dotdocker")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for src, dst := range map[string]string{"ca.pem": "ca.pem", "cert.pem": "cert.pem", "key.pem": "key.pem"} {
			data, _ := os.ReadFile(filepath.Join(art, src))
			write(t, filepath.Join(dir, dst), string(data))
		}
		e.MustTLS("import", "article2", "--host", d2.Host, "--dir", dir, "--remove-originals")
		if _, err := os.Stat(filepath.Join(dir, "key.pem")); !os.IsNotExist(err) {
			t.Fatalf("--remove-originals kept the key: %v", err)
		}
		requireOK(t, e.Docker("--context", "article2", "version", "--format", "{{.Server.Version}}"))
	})
}

// TestContextsMadeByDockerAreLeftAlone: contexts made with docker context
// create are listed but never changed, and the default context is untouched.
func TestContextsMadeByDockerAreLeftAlone(t *testing.T) {
	need(t, "docker")
	e := NewEnv(t)
	e.MustTLS("ca", "init")
	c := e.Path("client")
	e.MustTLS("client", "issue", "bob", "--out", c)
	requireOK(t, e.Docker("context", "create", "plain", "--docker",
		fmt.Sprintf("host=tcp://127.0.0.1:2376,ca=%s,cert=%s,key=%s", filepath.Join(c, "ca.pem"), filepath.Join(c, "cert.pem"), filepath.Join(c, "key.pem"))))
	requireOK(t, e.Docker("context", "create", "nossl", "--docker", "host=tcp://127.0.0.1:2375"))
	before := snapshot(t, filepath.Join(e.ConfigDir, "contexts"))
	ls := e.MustTLS("ls", "--format", "{{.Name}}|{{.Client}}|{{.Key}}|{{.Managed}}")
	if !strings.Contains(ls.Stdout, "plain|CN=bob|context|false") && !strings.Contains(ls.Stdout, "plain|bob|context|false") {
		t.Fatalf("ls:\n%s", ls.Stdout)
	}
	if strings.Contains(ls.Stdout, "nossl") || strings.Contains(ls.Stdout, "default") {
		t.Fatalf("ls shows contexts without TLS certificates:\n%s", ls.Stdout)
	}
	if all := e.MustTLS("ls", "--all", "--quiet"); !strings.Contains(all.Stdout, "nossl") {
		t.Fatalf("ls --all:\n%s", all.Stdout)
	}
	requireFail(t, e.TLS("rm", "--force", "plain"), "not created by docker tls")
	requireFail(t, e.TLS("lock", "plain"), "not created by docker tls")
	requireFail(t, e.TLS("rm", "--force", "default"), "")
	requireOK(t, e.TLS("env", "plain"))
	if after := snapshot(t, filepath.Join(e.ConfigDir, "contexts")); after != before {
		t.Fatalf("docker tls changed contexts it does not own:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestConcurrentContextCreates: 20 different names at once all succeed; two
// of one name give one winner and one clear error.
func TestConcurrentContextCreates(t *testing.T) {
	need(t, "docker")
	e := NewEnv(t)
	e.MustTLS("ca", "init")
	var wg sync.WaitGroup
	results := make([]Result, 22)
	for i := range 22 {
		name := fmt.Sprintf("c%02d", i)
		if i >= 20 {
			name = "same"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.TLS("context", "create", name, "--host", "tcp://127.0.0.1:2376", "--issue")
		}()
	}
	wg.Wait()
	for i := range 20 {
		requireOK(t, results[i])
	}
	a, b := results[20], results[21]
	if (a.Code == 0) == (b.Code == 0) {
		t.Fatalf("two creates of one name: exit %d and %d\n%s\n%s", a.Code, b.Code, a, b)
	}
	loser := a
	if a.Code == 0 {
		loser = b
	}
	requireFail(t, loser, "already exists")
	ls := e.MustTLS("ls", "-q")
	if got := len(strings.Fields(ls.Stdout)); got != 21 {
		t.Fatalf("%d contexts, want 21:\n%s", got, ls.Stdout)
	}
	keys := e.MustTLS("keys", "ls", "--format", "{{.Owner}}")
	if strings.Contains(keys.Stdout, "orphan") || len(strings.Fields(keys.Stdout)) != 22 {
		t.Fatalf("keys after concurrent creates:\n%s", keys.Stdout)
	}
}

// TestKeysMigrate moves every key from the real Secret Service into the
// file store and back: each key leaves its old store, CA keys are encrypted
// in the file store, and the CA, a context and a locked context all keep
// working from wherever their key is.
func TestKeysMigrate(t *testing.T) {
	need(t, "docker")
	RequireKeyring(t)
	e := NewEnv(t)
	e.MustTLS("ca", "init")
	e.MustTLS("context", "create", "open", "--host", "tcp://127.0.0.1:1", "--issue")
	e.MustTLS("context", "create", "shut", "--host", "tcp://127.0.0.1:2", "--issue")
	e.MustTLS("lock", "shut")
	owners := []string{"ca/default", "context/open", "context/shut"}
	ids := map[string]string{}
	for _, o := range owners {
		ids[o] = keyIDOf(t, e, o)
	}
	pw := e.Path("ca-pass")
	write(t, pw, "Migrate-Passphrase-9\n")
	e.Secrets = append(e.Secrets, "Migrate-Passphrase-9")
	stores := func() string {
		return strings.TrimSpace(e.MustTLS("keys", "ls", "--format", "{{.Owner}}={{.Store}}").Stdout)
	}
	// works checks that every key is usable where it now lives.
	round := 0
	works := func(t *testing.T) {
		t.Helper()
		round++
		e.MustTLS("client", "issue", "probe", "--out", e.Path(fmt.Sprintf("probe-%d", round)), "--passphrase-file", pw)
		e.MustTLS("verify", "open", "--offline")
		e.MustTLS("unlock", "shut")
		e.MustTLS("verify", "shut", "--offline")
		e.MustTLS("lock", "shut")
	}

	r := e.MustTLS("keys", "migrate", "--to", "file", "--passphrase-file", pw)
	if !strings.Contains(r.Stdout, "Moved 3 key(s) to the file key store") {
		t.Fatalf("migrate to file: %s", r)
	}
	if got := stores(); got != "ca/default=file\ncontext/open=file\ncontext/shut=file" {
		t.Fatalf("after migrate to file:\n%s", got)
	}
	for _, o := range owners {
		if secretToolHas(t, e, ids[o]) {
			t.Errorf("%s's key is still in the keyring after migrate --to file", o)
		}
		f := filepath.Join(e.ConfigDir, "tls", "keys", ids[o]+".pem")
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
		data, _ := os.ReadFile(f)
		if enc := strings.HasPrefix(string(data), "-----BEGIN ENCRYPTED PRIVATE KEY-----"); enc != (o == "ca/default") {
			t.Errorf("%s in the file store: encrypted=%v (only CA keys are)", o, enc)
		}
	}
	works(t)

	r = e.MustTLS("keys", "migrate", "--to", "keyring", "--passphrase-file", pw)
	if !strings.Contains(r.Stdout, "Moved 3 key(s) to the keyring key store") {
		t.Fatalf("migrate back: %s", r)
	}
	if got := stores(); got != "ca/default=keyring\ncontext/open=keyring\ncontext/shut=keyring" {
		t.Fatalf("after migrate to keyring:\n%s", got)
	}
	for _, o := range owners {
		if !secretToolHas(t, e, ids[o]) {
			t.Errorf("%s's key is not in the keyring", o)
		}
		if _, err := os.Stat(filepath.Join(e.ConfigDir, "tls", "keys", ids[o]+".pem")); !os.IsNotExist(err) {
			t.Errorf("%s's key file is still in the file store: %v", o, err)
		}
	}
	works(t)
	if r := e.MustTLS("keys", "migrate", "--to", "keyring"); !strings.Contains(r.Stdout, "Moved 0 key(s)") {
		t.Fatalf("a second migrate moved something: %s", r)
	}
	requireFail(t, e.TLS("keys", "migrate", "--to", "vault"), "use keyring or file")
}
