package plugin

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/docker/cli/cli/command"
	cliflags "github.com/docker/cli/cli/flags"

	"github.com/docker-tls/docker-tls/internal/keyringtest"
	// The plugin's commands run here as docker-tls-db runs them, with
	// the database drivers linked.
	_ "github.com/docker-tls/docker-tls/remoteca/drivers"
)

// update rewrites the golden files: go test ./plugin -run Golden -update
var update = flag.Bool("update", false, "rewrite testdata/*.golden from the output")

// testCLI runs docker tls commands in this process, the way docker/cli's
// own command tests do: a real DockerCli on a temporary DOCKER_CONFIG, its
// streams captured, and an in-memory keyring shared by every command of
// the test, as the OS keyring is shared by a user's commands.
type testCLI struct {
	t       *testing.T
	dir     string // DOCKER_CONFIG
	keyring *keyringtest.Backend
	stdin   string
	// Stdout and Stderr of the last command.
	Stdout, Stderr string
}

func newTestCLI(t *testing.T) *testCLI {
	t.Helper()
	// Nothing inherited may point the docker CLI elsewhere.
	for _, k := range []string{"DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", PassphraseEnv} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	dir := filepath.Join(t.TempDir(), "docker-config")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("HOME", filepath.Dir(dir))
	return &testCLI{t: t, dir: dir, keyring: keyringtest.New()}
}

// run runs one command line (the words after `docker tls`) and returns
// its error; the output is in c.Stdout and c.Stderr.
func (c *testCLI) run(args ...string) error {
	c.t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCommand(c.app(&out, &errOut))
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.Execute()
	c.Stdout, c.Stderr = out.String(), errOut.String()
	c.stdin = ""
	return err
}

// app is the plugin as one command sees it, its output going to out and errOut.
func (c *testCLI) app(out, errOut io.Writer) *app {
	c.t.Helper()
	dockerCLI, err := command.NewDockerCli(
		command.WithInputStream(io.NopCloser(strings.NewReader(c.stdin))),
		command.WithOutputStream(out),
		command.WithErrorStream(errOut),
	)
	if err != nil {
		c.t.Fatal(err)
	}
	opts := cliflags.NewClientOptions()
	opts.ConfigDir = c.dir
	if err := dockerCLI.Initialize(opts); err != nil {
		c.t.Fatal(err)
	}
	return &app{cli: dockerCLI, keyring: c.keyring}
}

// must runs a command that has to succeed, and returns its stdout.
func (c *testCLI) must(args ...string) string {
	c.t.Helper()
	if err := c.run(args...); err != nil {
		c.t.Fatalf("docker tls %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, c.Stdout, c.Stderr)
	}
	return c.Stdout
}

// fails runs a command that has to fail with an error containing want,
// and checks it changed nothing under DOCKER_CONFIG.
func (c *testCLI) fails(want string, args ...string) {
	c.t.Helper()
	before, keys := treeOf(c.t, c.dir), c.keyring.Len()
	err := c.run(args...)
	if err == nil || !strings.Contains(err.Error(), want) {
		c.t.Fatalf("docker tls %s: got error %v, want one containing %q\nstdout:\n%s", strings.Join(args, " "), err, want, c.Stdout)
	}
	if strings.Contains(err.Error(), "\n") {
		c.t.Errorf("docker tls %s: the error is more than one line:\n%v", strings.Join(args, " "), err)
	}
	if c.keyring.Len() != keys {
		c.t.Fatalf("docker tls %s failed but changed the keyring: %d entries, %d before", strings.Join(args, " "), c.keyring.Len(), keys)
	}
	if after := treeOf(c.t, c.dir); after != before {
		c.t.Fatalf("docker tls %s failed but changed DOCKER_CONFIG:\nbefore:\n%s\nafter:\n%s", strings.Join(args, " "), before, after)
	}
}

// treeOf lists every file under dir with its size and mode, skipping the
// lock file, with a digest of its content.
func treeOf(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if strings.HasPrefix(rel, filepath.Join("tls", "locks")) {
			return nil // the lock file is made by the first command that locks
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %s %x\n", rel, fi.Mode(), sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// normalizers replace what differs between runs (dates, fingerprints, key
// ids, serials, paths) with stable words, so golden files compare.
func (c *testCLI) normalize(s string) string {
	s = strings.ReplaceAll(s, c.dir, "$DOCKER_CONFIG")
	for _, n := range []struct {
		re   *regexp.Regexp
		with string
	}{
		{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "TIME"},
		{regexp.MustCompile(`\d{4}-\d\d-\d\d`), "DATE"},
		{regexp.MustCompile(`(ctx|ca)-([A-Za-z0-9_.-]+?)-[0-9a-f]{12}\b`), "$1-$2-ID"},
		{regexp.MustCompile(`\b[0-9A-F]{2}(:[0-9A-F]{2}){7,31}\b`), "FINGERPRINT"},
		{regexp.MustCompile(`\b[0-9a-f]{64}\b`), "HEX64"},
		{regexp.MustCompile(`\b[0-9a-fA-F]{40}\b`), "HEX40"},
		{regexp.MustCompile(`\b[0-9a-f]{28,32}\b`), "SERIAL"},
		{regexp.MustCompile(`"durationNs": \d+`), `"durationNs": N`},
		{regexp.MustCompile(`(?m)\((\d+(\.\d+)?(ns|µs|ms|s))+\)$`), "(DURATION)"},
		{regexp.MustCompile(`sha256:[0-9a-fA-F:]+`), "sha256:FINGERPRINT"},
		{regexp.MustCompile(`\b(36[45]\d|8\d|9\d|3\d\d) days\b`), "N days"},
		{regexp.MustCompile(`"DaysLeft":\s*\d+`), `"DaysLeft": N`},
	} {
		n.re.Longest()
		s = n.re.ReplaceAllString(s, n.with)
	}
	return s
}

// golden compares out with testdata/NAME.golden (or writes it with -update).
func (c *testCLI) golden(name, out string) {
	c.t.Helper()
	path := filepath.Join("testdata", name+".golden")
	got := c.normalize(out)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			c.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			c.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatalf("%v (run go test ./plugin -run %s -update to write it)", err, c.t.Name())
	}
	if got != string(want) {
		c.t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}
