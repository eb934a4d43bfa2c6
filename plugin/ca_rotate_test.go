package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/pki"
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

// TestCARotateRefusalsWriteNothing: every refusal of ca rotate comes
// before anything is written, the rotation's record and lock file
// included, so that no later --continue can turn it into a rotation; the
// passphrase and the identities to exclude are checked first.
func TestCARotateRefusalsWriteNothing(t *testing.T) {
	c := newTestCLI(t)
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.must("ca", "init", "pp", "--keystore", "file", "--passphrase-file", pass)
	c.must("ca", "init", "svc")
	c.must("ca", "token", "--ca", "svc", "--cn", "alice@lap1")
	c.must("ca", "token", "--ca", "svc", "--cn", "alice@lap2")
	c.must("ca", "init", "unserved")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"ca", "rotate", "pp", "--passphrase-file", wrong}, `wrong passphrase for the key of CA "pp"`},
		{[]string{"ca", "rotate", "svc", "--exclude", ""}, "--exclude needs a CN"},
		{[]string{"ca", "rotate", "svc", "--exclude", "a\nb"}, "contains a control character"},
		{[]string{"ca", "rotate", "svc", "--exclude", "alice@lpa1"}, `--exclude "alice@lpa1": CA "svc" issued no certificate or token to that name: did you mean "alice@lap1", "alice@lap2"?`},
		{[]string{"ca", "rotate", "svc", "--exclude", "zed"}, "docker tls ca issued ls lists who enrolled"},
		{[]string{"ca", "rotate", "svc", "--exclude", "alice@lap1", "--db", "postgres://u:s3cret@127.0.0.1:1/db?sslmode=disable"}, "cannot reach the database"},
		{[]string{"ca", "rotate", "unserved", "--exclude", "alice@lap1"}, `CA "unserved" has no service database`},
		// The rotation counts the laptops in the service's database: one
		// that cannot be reached is refused before anything is written.
		{[]string{"ca", "rotate", "svc", "--db", "postgres://u:s3cret@127.0.0.1:1/db?sslmode=disable"}, "cannot reach the database"},
		{[]string{"ca", "rotate", "svc", "--abort", "--exclude", "alice@lap1"}, "--exclude goes with a rotation or --continue, not --abort"},
		{[]string{"ca", "rotate", "svc", "--status", "--finish-now"}, "--finish-now goes with a rotation or --continue"},
	} {
		c.fails(tt.want, tt.args...)
		if strings.Contains(c.Stdout+c.Stderr, "s3cret") {
			t.Errorf("%q: the database password was shown", tt.args)
		}
	}
	if _, err := os.Stat(filepath.Join(c.dir, "tls", "rotations")); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(filepath.Join(c.dir, "tls", "rotations"))
		t.Fatalf("refused rotations left %d file(s) in tls/rotations (%v)", len(entries), err)
	}
	// The right command then runs: nothing of the refusals stands in its way.
	c.must("ca", "rotate", "svc", "--exclude", "alice@lap1")
	if !strings.Contains(c.Stdout, `Excluded "alice@lap1": revoked at the CA service`) || !strings.Contains(c.Stdout, `Rotated CA "svc"`) {
		t.Fatalf("rotate:\n%s", c.Stdout)
	}
	c.must("ca", "rotate", "pp", "--passphrase-file", pass)
}

// TestCARotateStatusAndAbort: a rotation that stops at an engine it
// cannot reach keeps its record; --status shows each target's phase and
// the engine's error, a new run is refused, and --abort walks the
// engine back too, so it stops while the engine cannot be reached.
func TestCARotateStatusAndAbort(t *testing.T) {
	c := newTestCLI(t)
	c.must("ca", "init")
	c.must("context", "create", "e1", "--host", "tcp://127.0.0.1:2376", "--issue")
	caPEM, err := os.ReadFile(filepath.Join(c.dir, "tls", "ca", "default", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := pki.ParseCertificate(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	// An engine set up from the CA, whose host refuses ssh (port 1 of
	// loopback): the rotation reaches it in phase 2 and stops there.
	recs := engine.Records{Dir: filepath.Join(c.dir, "tls", "engines")}
	if err := recs.Put(&engine.Record{Name: "e1", Dest: "ssh://root@127.0.0.1:1", Context: "e1", CA: "default",
		CAFingerprint: pki.Fingerprint(caCert), Host: "tcp://127.0.0.1:2376", Port: 2376, TLSDir: engine.DefaultTLSDir,
		SANs: []string{"127.0.0.1"}, Status: engine.StatusReady}); err != nil {
		t.Fatal(err)
	}

	err = c.run("ca", "rotate", "default")
	if err == nil || !strings.Contains(err.Error(), "docker tls ca rotate default --continue (or --abort before phase 4)") {
		t.Fatalf("rotate: %v\n%s", err, c.Stdout)
	}
	c.must("ca", "rotate", "default", "--status")
	for _, want := range []string{`Rotation of CA "default" (in progress)`, "context  e1", "phase 2", "engine   e1", "phase 1", "LAST ERROR: "} {
		if !strings.Contains(c.Stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, c.Stdout)
		}
	}
	c.must("ca", "rotate", "default", "--status", "--format", "json")
	if !strings.Contains(c.Stdout, `"newFingerprint"`) && !strings.Contains(c.Stdout, `"NewFingerprint"`) {
		t.Errorf("json status:\n%s", c.Stdout)
	}
	c.fails(`a rotation of CA "default" is in progress`, "ca", "rotate", "default")

	// --abort walks the engine back too (its step may have begun): while
	// it cannot be reached, the abort stops and says so, and the record
	// and the new CA stay for the next try.
	err = c.run("ca", "rotate", "default", "--abort")
	if err == nil || !strings.Contains(err.Error(), "engine e1") || !strings.Contains(err.Error(), "docker tls ca rotate default --abort") {
		t.Fatalf("abort with the engine unreachable: %v", err)
	}
	for _, p := range []string{filepath.Join("tls", "rotations", "default.json"), filepath.Join("tls", "ca", "default", "next.pem")} {
		if _, err := os.Stat(filepath.Join(c.dir, p)); err != nil {
			t.Errorf("%s after a stopped abort: %v", p, err)
		}
	}
}
