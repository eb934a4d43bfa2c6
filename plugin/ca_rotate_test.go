package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCARotateBadInput: each mistake gets one sentence, and nothing is
// started: no record, no new CA.
func TestCARotateBadInput(t *testing.T) {
	c := newTestCLI(t)
	c.must("ca", "init")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"ca", "rotate", "default", "--status", "--abort"}, "give one of --status, --continue and --abort"},
		{[]string{"ca", "rotate", "default", "--format", "json"}, "--format goes with --status"},
		{[]string{"ca", "rotate", "default", "--status", "--format", "yaml"}, `--format "yaml": use json`},
		{[]string{"ca", "rotate", "default", "--parallel", "0"}, "--parallel 0"},
		{[]string{"ca", "rotate", "default", "--continue"}, "no rotation of CA \"default\" in progress"},
		{[]string{"ca", "rotate", "default", "--abort"}, "no rotation of CA \"default\" in progress"},
		{[]string{"ca", "rotate", "nosuch"}, "no such CA"},
	} {
		c.fails(tt.want, tt.args...)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "tls", "rotations", "default.json")); !os.IsNotExist(err) {
		t.Fatalf("a refused rotation left a record: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "tls", "ca", "default", "next.pem")); !os.IsNotExist(err) {
		t.Fatalf("a refused rotation made a new CA: %v", err)
	}
	c.must("ca", "rotate", "default", "--status")
	if !strings.Contains(c.Stdout, "No rotation") {
		t.Fatalf("status: %q", c.Stdout)
	}
}

// TestCARotateWithoutEngines: a CA whose contexts are for engines docker
// tls did not set up rotates itself and lists those contexts with the
// commands their owners run; they keep the old CA.
func TestCARotateWithoutEngines(t *testing.T) {
	c := newTestCLI(t)
	c.must("ca", "init")
	c.must("context", "create", "elsewhere", "--host", "tcp://192.0.2.1:2376", "--issue")
	before := c.must("ls", "--format", "{{.Issuer}}")
	c.must("ca", "rotate", "default")
	if !strings.Contains(c.Stdout, `Rotated CA "default": 0 engine(s) and 0 context(s)`) || !strings.Contains(c.Stdout, "context elsewhere (tcp://192.0.2.1:2376)") ||
		!strings.Contains(c.Stdout, "docker tls context create elsewhere --host tcp://192.0.2.1:2376 --issue --ca default --force") {
		t.Fatalf("rotate:\n%s", c.Stdout)
	}
	if after := c.must("ls", "--format", "{{.Issuer}}"); after != before {
		t.Fatalf("a context left alone changed: %q -> %q", before, after)
	}
	c.must("keys", "ls", "--format", "{{.Owner}}")
	if strings.Count(c.Stdout, "ca/default") != 1 {
		t.Fatalf("keys after the rotation:\n%s", c.Stdout)
	}
}
