package plugin

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/internal/pkitest"
	"github.com/docker-tls/docker-tls/pki"
)

// TestEngineTeardownSharedHost: two engines docker tls set up on one
// endpoint (say a file context and an agent-mode one): tearing one down
// would break the other, so it is refused before any connection, naming
// the other and --force.
func TestEngineTeardownSharedHost(t *testing.T) {
	c := newTestCLI(t)
	recs := engine.Records{Dir: filepath.Join(c.dir, "tls", "engines")}
	for _, name := range []string{"build1", "build1-agent"} {
		if err := recs.Put(&engine.Record{Name: name, Dest: "ssh://root@192.0.2.10", Context: name, Host: "tcp://192.0.2.10:2376", Port: 2376, TLSDir: engine.DefaultTLSDir, Status: engine.StatusReady}); err != nil {
			t.Fatal(err)
		}
	}
	c.fails("engine build1-agent is also tcp://192.0.2.10:2376 (build1): tearing it down breaks their contexts too; run again with --force", "engine", "teardown", "build1")
}

// TestEngineSetupChecks: engine setup's refusals before it connects, and
// those after reading the host but before writing, each one sentence.
func TestEngineSetupChecks(t *testing.T) {
	c := newTestCLI(t)
	c.must("ca", "init")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"engine", "setup", "root@host", "--port", "0"}, "--port 0 is not a TCP port"},
		{[]string{"engine", "setup", "root@host", "--wait", "0s"}, "--wait 0s: give a duration from 1s to 1h"},
		{[]string{"engine", "setup", "root@host", "--tls-dir", "relative/dir"}, "--tls-dir"},
		{[]string{"engine", "setup", "root@host", "--ssh-config", filepath.Join(c.dir, "absent")}, "--ssh-config"},
		{[]string{"engine", "setup", "root@host", "--ssh-config", c.dir}, "is not a file"},
		{[]string{"engine", "setup", "root@host", "--name", "bad name"}, "bad name"},
		{[]string{"engine", "setup", "root@host", "--days", "-1"}, "--days"},
		{[]string{"engine", "setup", "root@host", "--ca", "nosuch"}, "no such CA"},
	} {
		c.fails(tt.want, tt.args...)
	}

	ca := pkitest.NewCA(t, "team CA", "")
	other := pkitest.NewCA(t, "other CA", "")
	stored := &castore.CA{Meta: castore.Meta{Name: "team"}, Cert: ca.Cert}
	dest, _ := engine.ParseDest("root@build-1")
	rec := &engine.Record{Name: "build-1", Dest: dest.String(), CA: "old", CAFingerprint: pki.Fingerprint(ca.Cert)}
	none := errors.New("none")
	for _, tt := range []struct {
		name          string
		rec           *engine.Record
		recErr, cxErr error
		want          string
	}{
		{"new name", nil, none, none, ""},
		{"a context not set up by docker tls", nil, none, nil, `context "build-1" already exists and is not an engine docker tls set up`},
		{"another host", &engine.Record{Dest: "ssh://root@elsewhere", CAFingerprint: rec.CAFingerprint}, nil, nil, "engine \"build-1\" is ssh://root@elsewhere, not"},
		{"another CA", &engine.Record{Dest: rec.Dest, CA: "other", CAFingerprint: pki.Fingerprint(other.Cert)}, nil, nil, `engine "build-1" was set up with CA "other", not this CA "team": run again with --force`},
		{"a second run", rec, nil, nil, ""},
	} {
		err := checkReuse("build-1", dest, stored, tt.rec, tt.recErr, tt.cxErr)
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}

	if n, err := hostContextName("build-1.example.com"); err != nil || n != "build-1" {
		t.Errorf("hostContextName: %q, %v", n, err)
	}
	if _, err := hostContextName("-x.example.com"); err == nil || !strings.Contains(err.Error(), "give --name") {
		t.Errorf("hostContextName of a bad name: %v", err)
	}
}

// TestSSHHint: each ssh failure gets the command that fixes it.
func TestSSHHint(t *testing.T) {
	d, _ := engine.ParseDest("ssh://admin@build-1:2222")
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&engine.HostKeyError{Dest: d, Fingerprint: "SHA256:abc"}, "ssh -F /cfg -p 2222 -o StrictHostKeyChecking=accept-new build-1 true"},
		{&engine.HostKeyError{Dest: d, Changed: true}, "ssh-keygen -R build-1"},
		{&engine.SudoPasswordError{User: "admin", Host: "build-1"}, "'admin ALL=(ALL) NOPASSWD: ALL'"},
		{errors.New("other"), "other"},
	} {
		if got := sshHint(tt.err, d, "/cfg").Error(); !strings.Contains(got, tt.want) {
			t.Errorf("sshHint(%T) = %q, want %q in it", tt.err, got, tt.want)
		}
	}
}

// TestPrintSetupPlan: what engine setup shows before it changes anything,
// and that a dry run and a host in place stop there.
func TestPrintSetupPlan(t *testing.T) {
	d, _ := engine.ParseDest("root@build-1")
	facts := &engine.Facts{OS: "Debian GNU/Linux 12", ServerVersion: "20.10.24", Running: 2, LiveRestore: true}
	plan := &engine.Plan{Mode: engine.ModeDropIn, Restart: true, Notes: []string{"restart dockerd"}}
	var out strings.Builder
	if !printSetupPlan(&out, engineSetupOptions{}, "build-1", "tcp://build-1:2376", "team", d, facts, plan, false) {
		t.Error("a plan with changes did not go on")
	}
	for _, want := range []string{"build-1: Debian GNU/Linux 12, dockerd 20.10.24, 2 running containers, live-restore on", " - restart dockerd", " - create context build-1 for tcp://build-1:2376 with a client certificate from CA \"team\""} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if printSetupPlan(&out, engineSetupOptions{dryRun: true}, "build-1", "tcp://build-1:2376", "team", d, facts, plan, false) || !strings.Contains(out.String(), "Dry run: nothing was changed") {
		t.Errorf("dry run:\n%s", out.String())
	}
	out.Reset()
	facts.ServerVersion, facts.DockerdVer = "", "Docker version 20.10.24"
	if printSetupPlan(&out, engineSetupOptions{}, "build-1", "tcp://build-1:2376", "team", d, facts, &engine.Plan{Mode: engine.ModeDropIn}, true) ||
		!strings.Contains(out.String(), "(not running)") || !strings.Contains(out.String(), "is set up already") {
		t.Errorf("in place:\n%s", out.String())
	}
}
