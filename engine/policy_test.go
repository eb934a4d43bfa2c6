package engine

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
)

// hostArch is uname -m's name for the machine this test runs on.
func hostArch(t *testing.T) string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	t.Skipf("no uname -m name known here for %s", runtime.GOARCH)
	return ""
}

func testBinary(t *testing.T) []byte {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the test binary is a Linux executable only on Linux")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestCheckBinaryArch(t *testing.T) {
	bin := testBinary(t)
	arch := hostArch(t)
	other := "aarch64"
	if arch == "aarch64" {
		other = "x86_64"
	}
	tests := []struct {
		name string
		bin  []byte
		host string
		want string
	}{
		{"the same machine", bin, arch, ""},
		{"another machine", bin, other, "the host is " + other + ", and the plugin binary is built for " + arch},
		{"a binary of another system", []byte("\xcf\xfa\xed\xfe not an ELF file"), arch, "the host is " + arch + ", and the plugin binary is not a Linux executable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckBinaryArch(tc.bin, tc.host)
			var ae *ArchError
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want || !errors.As(err, &ae)):
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func policyFactsOut(kv map[string]string) []byte {
	def := map[string]string{"arch": "x86_64", "policy": "absent", "binary_sum": "", "daemon_json": "absent", "exec_start": "",
		"docker": "active", "socket": "inactive", "service": "inactive", "units": "0", "info": b64("null"), "pending": "0", "has_backup": "0", "end": "1"}
	for k, v := range kv {
		def[k] = v
	}
	var b strings.Builder
	for k, v := range def {
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	return []byte(b.String())
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParsePolicyFacts(t *testing.T) {
	tests := []struct {
		name    string
		kv      map[string]string
		enabled bool
	}{
		{"no plugin", nil, false},
		{"listed by docker info", map[string]string{"info": b64(`["other","docker-tls"]` + "\n")}, true},
		{"local calls refused by the plugin itself", map[string]string{"info": b64("Error response from daemon: authorization denied by plugin docker-tls: calls without a client certificate (the host's own socket) are refused on this engine")}, true},
		{"another plugin only", map[string]string{"info": b64(`["other"]`)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parsePolicyFacts(policyFactsOut(tc.kv))
			if err != nil {
				t.Fatal(err)
			}
			if f.Enabled != tc.enabled || f.Docker != "active" || f.Config != nil {
				t.Errorf("%+v", f)
			}
		})
	}
	if _, err := parsePolicyFacts([]byte("arch=x86_64\n")); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("a cut answer: %v", err)
	}
}

func TestPlanPolicy(t *testing.T) {
	bin := testBinary(t)
	arch := hostArch(t)
	cfg := []byte(`{"engine":"e","policy":{"grants":[{"subject":"user:a","role":"admin"}]}}` + "\n")
	first := &PolicyFacts{Arch: arch, Docker: "active", Info: "null", DaemonJSON: []byte(`{"live-restore": true, "authorization-plugins": ["opa"]}`)}
	p, err := PlanPolicy(first, PolicyRequest{Config: cfg, Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	if p.Binary == nil || len(p.Files) != 4 || p.DaemonJSON == nil || !p.First || p.RestartPlugin || len(p.Digest) != 64 {
		t.Fatalf("first plan: binary %v, %d files, daemon.json %s, first %v, restart %v", p.Binary != nil, len(p.Files), p.DaemonJSON, p.First, p.RestartPlugin)
	}
	dj, err := parseDaemonJSON(p.DaemonJSON)
	if err != nil || strings.Join(authzPlugins(dj), ",") != "opa,docker-tls" || string(dj.keys["live-restore"]) != "true" {
		t.Errorf("daemon.json %s: the host's own plugin stays first, ours is added", p.DaemonJSON)
	}
	if back := withoutPlugin(dj).render(); !strings.Contains(string(back), `"opa"`) || strings.Contains(string(back), PluginName) {
		t.Errorf("off: %s", back)
	}
	if back := withoutPlugin(mustDaemonJSON([]byte(`{"authorization-plugins":["docker-tls"]}`))).render(); strings.Contains(string(back), "authorization") {
		t.Errorf("off with ours alone: %s, want the key gone", back)
	}

	// The host as the first plan leaves it: nothing to do; a new policy
	// only writes the file (the plugin reloads it itself).
	inForce := &PolicyFacts{Arch: arch, Docker: "active", Info: `["opa","docker-tls"]`, Enabled: true, DaemonJSON: p.DaemonJSON,
		Config: cfg, BinarySum: sha(bin), Units: true, Socket: "active", Service: "active", HasBackup: true}
	if p, err := PlanPolicy(inForce, PolicyRequest{Config: cfg, Binary: bin}); err != nil || !p.UpToDate() {
		t.Errorf("in force: %+v, %v", p, err)
	}
	other := append([]byte(nil), cfg...)
	other = append(other[:len(other)-1], ' ', '\n')
	if p, err := PlanPolicy(inForce, PolicyRequest{Config: other, Binary: bin}); err != nil || len(p.Files) != 1 || p.Files[0].Path != PolicyPath || p.DaemonJSON != nil || p.RestartPlugin {
		t.Errorf("a new policy: %+v, %v", p, err)
	}
	upgraded := *inForce
	upgraded.BinarySum = "0000"
	if p, err := PlanPolicy(&upgraded, PolicyRequest{Config: cfg, Binary: bin}); err != nil || p.Binary == nil || !p.RestartPlugin || p.DaemonJSON != nil {
		t.Errorf("a new binary: %+v, %v", p, err)
	}

	refusals := []struct {
		name string
		f    PolicyFacts
		want string
	}{
		{"dockerd down", PolicyFacts{Arch: arch, Docker: "failed"}, "dockerd is not running on the host (docker.service is failed)"},
		{"another machine", PolicyFacts{Arch: "s390x", Docker: "active"}, "the host is s390x"},
		{"the plugin flag on dockerd's command line", PolicyFacts{Arch: arch, Docker: "active", ExecStart: "{ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd -H fd:// --authorization-plugin=opa ; }"}, "--authorization-plugin"},
		{"daemon.json broken", PolicyFacts{Arch: arch, Docker: "active", DaemonJSON: []byte("{")}, "not valid JSON"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := PlanPolicy(&tc.f, PolicyRequest{Config: cfg, Binary: bin}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPolicyUnits(t *testing.T) {
	svc := string(serviceUnitText())
	for _, want := range []string{"Restart=always", "StartLimitIntervalSec=0", "Requires=" + pluginSocketUnit, "ExecStart=" + PluginBinaryPath + " authz-plugin --config " + PolicyPath, "Environment=GOMAXPROCS=1 GOGC=400"} {
		if !strings.Contains(svc, want) {
			t.Errorf("the service unit has no %q:\n%s", want, svc)
		}
	}
	if sock := string(socketUnitText()); !strings.Contains(sock, "ListenStream="+PluginSocket) || !strings.Contains(sock, "SocketMode=0600") {
		t.Errorf("socket unit:\n%s", sock)
	}
	if d := string(orderDropInText()); !strings.Contains(d, "After="+pluginSocketUnit) || !strings.Contains(d, "Wants="+pluginSocketUnit) {
		t.Errorf("docker.service drop-in:\n%s", d)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// scriptShell answers every script with out (or err).
type scriptShell struct {
	out []byte
	err error
}

func (s scriptShell) Run(context.Context, string, []byte) ([]byte, error) { return s.out, s.err }
func (scriptShell) Host() string                                          { return "h1" }

func TestPolicyStatus(t *testing.T) {
	tests := []struct {
		name    string
		sh      scriptShell
		want    string // the engine's name in the status; "" for none
		wantErr string
	}{
		{"no policy installed", scriptShell{out: []byte("\n")}, "", ""},
		{"plugin answers", scriptShell{out: []byte(`{"engine":"e1","crls":[]}`)}, "e1", ""},
		{"plugin answers nonsense", scriptShell{out: []byte("dial unix: refused")}, "", `the plugin on h1 answered "dial unix: refused"`},
		{"ssh fails", scriptShell{err: errors.New("exit status 255")}, "", "ask the plugin on h1: exit status 255"},
	}
	for _, tc := range tests {
		st, err := PolicyStatus(context.Background(), tc.sh)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want == "" && st != nil, tc.want != "" && (st == nil || st.Engine != tc.want):
			t.Errorf("%s: status %+v, want engine %q", tc.name, st, tc.want)
		}
	}
}
