package engine

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runScript runs a host script with the local sh, the way Session.Run
// does on the host (eval of the whole text).
func runScript(t *testing.T, dir, script string) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", `eval "$DOCKER_TLS_SCRIPT"`)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_TLS_SCRIPT="+script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("script failed: %v\n%s\n---\n%s", err, out, script)
	}
	return string(out)
}

// TestScriptsTakePathsAsData: the backup and the restore treat every path
// as one piece of data, whatever it holds (spaces, newlines between list
// items, shell syntax), even though CheckTLSDir lets none of that in.
func TestScriptsTakePathsAsData(t *testing.T) {
	d := t.TempDir()
	odd := filepath.Join(d, "my tls $(touch pwned) `touch pwned2`", "server-key.pem")
	missing := filepath.Join(d, "my", "absent.pem")
	if err := os.MkdirAll(filepath.Dir(odd), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(odd, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A file beside the odd one's first word: a script that split on
	// spaces would record it as absent and the restore would remove it.
	bystander := filepath.Join(d, "my")
	if err := os.MkdirAll(bystander, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bystander, "keep"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	lists := "FILES=" + shellQuote(odd+"\n"+missing) + "; DIRS=" + shellQuote(filepath.Dir(odd)) + "; "
	snap := strings.ReplaceAll(snapshotScript, HostStateDir, filepath.Join(d, "state"))
	runScript(t, d, lists+"DEST="+shellQuote(filepath.Join(d, "backup"))+"; ONCE=\n("+snap+")")

	absent, err := os.ReadFile(filepath.Join(d, "backup", "absent"))
	if err != nil {
		t.Fatal(err)
	}
	if string(absent) != missing+"\n" {
		t.Errorf("absent = %q, want only %q", absent, missing)
	}
	if got, err := os.ReadFile(filepath.Join(d, "backup", "files", odd)); err != nil || string(got) != "key" {
		t.Errorf("the backup of %q: %q, %v", odd, got, err)
	}

	// The restore: the odd file comes back, the absent one stays absent,
	// nothing else is touched.
	if err := os.WriteFile(odd, []byte("new key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(missing, []byte("written by setup"), 0o644); err != nil {
		t.Fatal(err)
	}
	runScript(t, d, lists+"SRC="+shellQuote(filepath.Join(d, "backup"))+"\n"+restoreScript)
	if got, err := os.ReadFile(odd); err != nil || string(got) != "key" {
		t.Errorf("restored %q: %q, %v", odd, got, err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("%s was absent before and should be removed: %v", missing, err)
	}
	if got, err := os.ReadFile(filepath.Join(bystander, "keep")); err != nil || string(got) != "keep" {
		t.Errorf("a file the scripts never managed changed: %q, %v", got, err)
	}
	for _, p := range []string{"pwned", "pwned2"} {
		if _, err := os.Stat(filepath.Join(d, p)); err == nil {
			t.Errorf("a path ran as a command (%s exists)", p)
		}
	}
}

func TestCheckTLSDir(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want string // "" for accepted
	}{
		{"/etc/docker/tls", ""},
		{"/opt/docker-tls/certs_2", ""},
		{"/etc/docker/tls.d", ""},
		{"", "is empty"},
		{"etc/docker/tls", "is not an absolute path"},
		{"/etc/my tls", `holds ' '`},
		{"/etc/docker/tls\nExecStartPre=/bin/evil", `holds '\n'`},
		{"/etc/docker/tls\t", `holds '\t'`},
		{"/etc/docker/../../tmp/x", "holds '..'"},
		{"/etc/docker/tls/", "is not a clean path: give it as /etc/docker/tls"},
		{"/etc//docker", "is not a clean path: give it as /etc/docker"},
		{"/etc/./docker", "is not a clean path"},
		{"/tmp/$(reboot)", `holds '$'`},
		{"/etc/docker/%h", `holds '%'`},
		{"/etc/dockér", `holds 'é'`},
		{"/etc/docker/\u202etls", `holds '\u202e'`},
		{"/", "is a system directory"},
		{"/etc", "is a system directory"},
		{"/usr", "is a system directory"},
		{"/var", "is a system directory"},
		{"/run", "is a system directory"},
		{"/lib64", "is a system directory"},
		{"/lib", "is a system directory"},
		{"/boot", "is a system directory"},
		{"/proc", "is a system directory"},
		{"/sys", "is a system directory"},
		{"/dev", "is a system directory"},
		{"/bin", "is a system directory"},
		{"/sbin", "is a system directory"},
		{"/var/lib/docker-tls-certs", ""},
	} {
		err := CheckTLSDir(tc.dir)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckTLSDir(%q) = %v, want accepted", tc.dir, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckTLSDir(%q) = %v, want %q", tc.dir, err, tc.want)
		}
	}
}

func TestEngineNames(t *testing.T) {
	r := Records{Dir: t.TempDir()}
	for _, name := range []string{"../ca/svc/ca", "a/b", ".hidden", "x", "", "name with space", "tab\tname"} {
		if _, err := r.Get(name); err == nil || !strings.Contains(err.Error(), "is not an engine name") {
			t.Errorf("Get(%q) = %v, want a refusal of the name", name, err)
		}
		if err := r.Remove(name); err == nil {
			t.Errorf("Remove(%q) accepted", name)
		}
		if err := r.Put(&Record{Name: name, TLSDir: DefaultTLSDir}); err == nil {
			t.Errorf("Put(%q) accepted", name)
		}
	}
	if entries, _ := os.ReadDir(r.Dir); len(entries) != 0 {
		t.Errorf("refused names wrote %d entries", len(entries))
	}
	if err := r.Put(&Record{Name: "build-1", TLSDir: DefaultTLSDir}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get("build-1"); err != nil {
		t.Error(err)
	}
}
