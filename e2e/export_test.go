package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportInspectDaemonConfig: daemon-config output starts a real
// dockerd; curl with the exported flags gets OK; openssl reads the p12 with
// its password; the exported env works with no context; inspect explains.
func TestExportInspectDaemonConfig(t *testing.T) {
	need(t, "docker")
	needRoot(t)
	need(t, "dockerd")
	e := NewEnv(t)
	e.MustTLS("ca", "init")
	srv := e.Path("srv")
	e.MustTLS("server", "issue", "localhost", "127.0.0.1", "--out", srv)

	dj := e.MustTLS("daemon-config", "--dir", srv, "--format", "daemon.json")
	if strings.Contains(dj.Stdout, `"hosts"`) || !strings.Contains(dj.Stderr, "refuse to start") {
		t.Fatalf("daemon.json: %s", dj)
	}
	cfg := e.Path("daemon.json")
	write(t, cfg, dj.Stdout)
	d := StartDockerd(t, ServerTLS{ConfigFile: cfg})
	sd := e.MustTLS("daemon-config", "--dir", srv, "--format", "systemd", "--listen", "tcp://0.0.0.0:2376")
	if !strings.Contains(sd.Stdout, "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// -H tcp://0.0.0.0:2376 --tlsverify") {
		t.Fatalf("systemd drop-in:\n%s", sd.Stdout)
	}
	requireFail(t, e.TLS("daemon-config", "--dir", e.Path("nope")), "no such file")
	// Where the files will live on the engine and its port shape what server issue prints.
	opt := e.MustTLS("server", "issue", "engine.example.com", "--out", e.Path("srv-opt"), "--install-dir", "/opt/docker-tls", "--port", "2400")
	for _, want := range []string{"--tlscacert=/opt/docker-tls/ca.pem", "--tlskey=/opt/docker-tls/server-key.pem", "tcp://0.0.0.0:2400"} {
		if !strings.Contains(opt.Stdout, want) {
			t.Fatalf("server issue --install-dir --port: no %q in\n%s", want, opt.Stdout)
		}
	}
	if dj, _ := os.ReadFile(filepath.Join(e.Path("srv-opt"), "daemon.json")); !strings.Contains(string(dj), `"/opt/docker-tls/server-cert.pem"`) {
		t.Fatalf("daemon.json for --install-dir:\n%s", dj)
	}

	e.MustTLS("context", "create", "xc", "--host", d.Host, "--issue")
	requireOK(t, e.Docker("--context", "xc", "version", "--format", "{{.Server.Version}}"))

	t.Run("curl", func(t *testing.T) {
		need(t, "curl")
		flags := e.MustTLS("export", "xc", "--format", "curl")
		sh := exec.Command("bash", "-c", "eval \"curl -sS --max-time 20 $FLAGS/_ping\"")
		sh.Env = append(e.environ(), "FLAGS="+strings.TrimSpace(flags.Stdout))
		out, err := sh.CombinedOutput()
		if err != nil || string(out) != "OK" {
			t.Fatalf("curl with exported flags: %v %q (flags %s)", err, out, flags.Stdout)
		}
	})

	t.Run("p12", func(t *testing.T) {
		need(t, "openssl")
		pw := e.Path("p12-password")
		write(t, pw, "p12-Password-123\n")
		e.Secrets = append(e.Secrets, "p12-Password-123")
		p12 := e.Path("x.p12")
		e.MustTLS("export", "xc", "--format", "p12", "--out", p12, "--password-file", pw)
		if fi, err := os.Stat(p12); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("p12 file: %v %v", fi, err)
		}
		info := exec.Command("openssl", "pkcs12", "-info", "-in", p12, "-passin", "file:"+pw, "-noout")
		if out, err := info.CombinedOutput(); err != nil || !strings.Contains(string(out), "MAC") {
			t.Fatalf("openssl pkcs12 -info: %v\n%s", err, out)
		}
		certs := exec.Command("openssl", "pkcs12", "-in", p12, "-passin", "file:"+pw, "-nokeys")
		if out, err := certs.CombinedOutput(); err != nil || strings.Count(string(out), "BEGIN CERTIFICATE") != 2 {
			t.Fatalf("p12 certificates: %v\n%s", err, out)
		}
		wrong := e.Path("wrong")
		write(t, wrong, "nope\n")
		if out, err := exec.Command("openssl", "pkcs12", "-info", "-in", p12, "-passin", "file:"+wrong, "-noout").CombinedOutput(); err == nil {
			t.Fatalf("openssl read the p12 with a wrong password:\n%s", out)
		}
		requireFail(t, e.TLS("export", "xc", "--format", "p12", "--out", p12, "--password-file", pw), "already exists")

		// Modern (the default) is PBES2 with AES-256; --legacy is 3DES for old
		// Windows and macOS, and says so in what openssl reports.
		algs := func(p12 string) string {
			out, err := exec.Command("openssl", "pkcs12", "-info", "-in", p12, "-passin", "file:"+pw, "-noout").CombinedOutput()
			if err != nil {
				t.Fatalf("openssl pkcs12 -info %s: %v\n%s", p12, err, out)
			}
			return string(out)
		}
		if info := algs(p12); !strings.Contains(info, "AES-256-CBC") || strings.Contains(info, "TripleDES") {
			t.Fatalf("default p12:\n%s", info)
		}
		legacy := e.Path("legacy.p12")
		e.MustTLS("export", "xc", "--format", "p12", "--legacy", "--out", legacy, "--password-file", pw)
		if info := algs(legacy); !strings.Contains(info, "pbeWithSHA1And3-KeyTripleDES-CBC") {
			t.Fatalf("--legacy p12:\n%s", info)
		}
	})

	t.Run("env and dir work without a context", func(t *testing.T) {
		dir := e.Path("exported")
		env := e.MustTLS("export", "xc", "--format", "env", "--out", dir, "--shell", "bash")
		if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key.pem: %v %v", fi, err)
		}
		sh := exec.Command("bash", "-c", env.Stdout+"\ndocker version --format '{{.Server.Version}}'")
		sh.Env = e.environ()
		if out, err := sh.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) == "" {
			t.Fatalf("docker with exported env: %v\n%s\n%s", err, env.Stdout, out)
		}
		// A locked context still exports (the key comes from the key store).
		e.MustTLS("lock", "xc")
		e.MustTLS("export", "xc", "--format", "dir", "--out", e.Path("from-locked"))
		requireOK(t, e.DockerVia(d.Host, DirTLS(e.Path("from-locked")), "version", "--format", "{{.Server.Version}}"))
		requireFail(t, e.TLS("export", "xc", "--format", "curl"), "locked")
		e.MustTLS("unlock", "xc")
	})

	t.Run("inspect", func(t *testing.T) {
		r := e.MustTLS("inspect", "xc")
		for _, want := range []string{"Extended key usage   clientAuth", `Chain                signed by "docker-tls CA default"`, "SHA-256", "ECDSA P-256"} {
			if !strings.Contains(r.Stdout, want) {
				t.Fatalf("inspect lacks %q:\n%s", want, r.Stdout)
			}
		}
		j := e.MustTLS("inspect", filepath.Join(srv, "server-cert.pem"), "--format", "json")
		var views []map[string]any
		if err := json.Unmarshal([]byte(j.Stdout), &views); err != nil || len(views) != 1 {
			t.Fatalf("inspect json: %v\n%s", err, j.Stdout)
		}
		if sans, _ := views[0]["sans"].([]any); len(sans) != 2 || views[0]["isCA"] != false {
			t.Fatalf("inspect json: %v", views[0])
		}
		requireFail(t, e.TLS("inspect", "no-such-thing"), "neither a file nor a context")
	})
}
