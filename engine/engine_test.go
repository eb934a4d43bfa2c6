package engine

import (
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

func TestParseDest(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Dest
		err  string
	}{
		{in: "host", want: Dest{Host: "host"}},
		{in: "root@192.0.2.1", want: Dest{User: "root", Host: "192.0.2.1"}},
		{in: "ssh://admin@build-1.example.com:2222", want: Dest{User: "admin", Host: "build-1.example.com", Port: "2222"}},
		{in: "ssh://[2001:db8::1]:22", want: Dest{Host: "2001:db8::1", Port: "22"}},
		{in: "tcp://host:2376", err: "incorrect scheme"},
		{in: "ssh://user:pw@host", err: "password"},
		{in: "ssh://host/path", err: "path"},
		{in: "-oProxyCommand=x", err: "'-'"},
		{in: "", err: "hostname is empty"},
	} {
		got, err := ParseDest(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseDest(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDest(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

const debianUnit = `# /lib/systemd/system/docker.service
[Unit]
Description=Docker Application Container Engine

[Service]
Type=notify
ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS
ExecReload=/bin/kill -s HUP $MAINPID
`

func TestEffectiveExecStart(t *testing.T) {
	for _, tc := range []struct {
		name, cat, want, err string
		line, later          int
	}{
		{name: "debian", cat: debianUnit, want: "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS", line: 6},
		{name: "drop-in before ours resets it", cat: debianUnit + "\n# /etc/systemd/system/docker.service.d/a.conf\n[Service]\nExecStart=\nExecStart=/usr/bin/dockerd \\\n  --containerd=/x\n", want: "/usr/bin/dockerd  --containerd=/x", line: 3},
		{name: "our own drop-in is ignored", cat: debianUnit + "\n# " + DropInPath + "\n[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H tcp://0.0.0.0:2376 --tlsverify\n", want: "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS", line: 6},
		{name: "drop-in after ours", cat: debianUnit + "\n# /etc/systemd/system/docker.service.d/override.conf\n[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd\n", want: "/usr/sbin/dockerd", line: 3, later: 2},
		{name: "none", cat: "# /lib/systemd/system/docker.service\n[Service]\nType=notify\n", err: "0 ExecStart"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, later, err := effectiveExecStart(tc.cat)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got.Command != tc.want || got.Line != tc.line || len(later) != tc.later {
				t.Fatalf("got %+v (%d later), %v; want %q at line %d (%d later)", got, len(later), err, tc.want, tc.line, tc.later)
			}
		})
	}
}

func TestDaemonJSONKeepsOrderAndBytes(t *testing.T) {
	in := []byte("{\n  \"log-driver\": \"journald\",\n  \"hosts\": [\"unix:///var/run/docker.sock\"],\n  \"storage-driver\": \"overlay2\"\n}\n")
	d, err := parseDaemonJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(d.render()); got != string(in) {
		t.Errorf("an unchanged file renders differently:\n%s", got)
	}
	n := d.with(map[string]any{"tlsverify": true}).withHost("tcp://0.0.0.0:2376")
	want := "{\n  \"log-driver\": \"journald\",\n  \"hosts\": [\n    \"unix:///var/run/docker.sock\",\n    \"tcp://0.0.0.0:2376\"\n  ],\n  \"storage-driver\": \"overlay2\",\n  \"tlsverify\": true\n}\n"
	if got := string(n.render()); got != want {
		t.Errorf("render:\n%s\nwant:\n%s", got, want)
	}
	if d.line("storage-driver") != 4 {
		t.Errorf("line of storage-driver = %d, want 4", d.line("storage-driver"))
	}
	if _, err := parseDaemonJSON([]byte("{oops")); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("broken daemon.json: %v", err)
	}
}

func newTestCA(t *testing.T) *pki.CA {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(key, pki.CAOptions{CommonName: "test CA"})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func testCA(t *testing.T) *x509.Certificate { return newTestCA(t).Cert }

func TestPlanSetup(t *testing.T) {
	ca := testCA(t)
	sans, _, _ := pki.ParseSANs([]string{"10.0.0.2", "host"})
	req := Request{Port: 2376, TLSDir: DefaultTLSDir, CA: ca, SANs: sans, Now: time.Now(), RenewWithin: 30 * 24 * time.Hour}
	fresh := func() *Facts {
		return &Facts{Systemd: true, Dockerd: "/usr/sbin/dockerd", Unit: UnitState{Load: "loaded", Active: "active", Sub: "running"}, UnitCat: debianUnit, Hostname: "host", Addrs: []net.IP{net.ParseIP("10.0.0.2")}, Swarm: "inactive"}
	}
	for _, tc := range []struct {
		name  string
		facts func(*Facts)
		req   func(*Request)
		check func(*testing.T, *Plan)
		err   string
	}{
		{name: "fresh host: drop-in, cert, restart", check: func(t *testing.T, p *Plan) {
			if p.Mode != ModeDropIn || !p.IssueCert || !p.Restart || len(p.Config) != 1 || p.Config[0].Path != DropInPath {
				t.Errorf("plan %+v", p)
			}
			if d := string(p.Config[0].Data); !strings.Contains(d, "ExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS -H tcp://0.0.0.0:2376 --tlsverify") {
				t.Errorf("drop-in:\n%s", d)
			}
		}},
		{name: "daemon.json with hosts: options go there", facts: func(f *Facts) {
			f.DaemonJSON = []byte(`{"hosts": ["unix:///var/run/docker.sock"]}`)
		}, check: func(t *testing.T, p *Plan) {
			if p.Mode != ModeDaemonJSON || len(p.Config) != 1 || p.Config[0].Path != DaemonJSONPath || !strings.Contains(string(p.Config[0].Data), `"tcp://0.0.0.0:2376"`) || !strings.Contains(string(p.Config[0].Data), `"tlskey": "/etc/docker/tls/server-key.pem"`) {
				t.Errorf("plan %+v\n%s", p, p.Config[0].Data)
			}
		}},
		{name: "running containers: live-restore by reload first", facts: func(f *Facts) { f.Running = 2 }, check: func(t *testing.T, p *Plan) {
			if p.LiveRestoreFirst == nil || !strings.Contains(string(p.LiveRestoreFirst), `"live-restore": true`) || p.StopsContainers {
				t.Errorf("plan %+v", p)
			}
		}},
		{name: "live-restore running but not configured: configured, no reload", facts: func(f *Facts) { f.Running = 1; f.LiveRestore = true }, check: func(t *testing.T, p *Plan) {
			if p.LiveRestoreFirst != nil || len(p.Config) != 2 || !strings.Contains(string(p.Config[1].Data), `"live-restore": true`) {
				t.Errorf("plan %+v", p)
			}
		}},
		{name: "live-restore configured as a flag and running: nothing to add", facts: func(f *Facts) {
			f.Running, f.LiveRestore = 1, true
			f.UnitCat = strings.Replace(debianUnit, "$DOCKER_OPTS", "--live-restore", 1)
		}, check: func(t *testing.T, p *Plan) {
			if p.LiveRestoreFirst != nil || len(p.Config) != 1 || p.StopsContainers {
				t.Errorf("plan %+v", p)
			}
		}},
		{name: "swarm with containers refused", facts: func(f *Facts) { f.Running = 1; f.Swarm = "active" }, err: "--restart-containers"},
		{name: "swarm with containers allowed", facts: func(f *Facts) { f.Running = 1; f.Swarm = "active" }, req: func(r *Request) { r.RestartContainers = true }, check: func(t *testing.T, p *Plan) {
			if !p.StopsContainers {
				t.Errorf("plan %+v", p)
			}
		}},
		{name: "tls flags of the user's own", facts: func(f *Facts) {
			f.UnitCat = strings.Replace(debianUnit, "$DOCKER_OPTS", "--tlsverify", 1)
		}, err: "/lib/systemd/system/docker.service line 6: dockerd's ExecStart already has --tlsverify"},
		{name: "tls key in daemon.json", facts: func(f *Facts) { f.DaemonJSON = []byte("{\n  \"tlscert\": \"/x\"\n}") }, err: "/etc/docker/daemon.json line 2: \"tlscert\" is already set"},
		{name: "port taken", facts: func(f *Facts) { f.PortUsers = `LISTEN 0 4096 *:2376 *:* users:(("nginx",pid=9,fd=3))` }, err: "port 2376 on the host is already taken"},
		{name: "a later drop-in overrides ExecStart", facts: func(f *Facts) {
			f.UnitCat += "\n# /etc/systemd/system/docker.service.d/override.conf\n[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd://\n"
		}, err: "override.conf line 2: this drop-in sets ExecStart and comes after docker-tls.conf"},
		{name: "no systemd", facts: func(f *Facts) { f.Systemd = false }, err: "does not run systemd"},
		{name: "no dockerd", facts: func(f *Facts) { f.Dockerd = "" }, err: "apt-get install docker.io"},
		{name: "dockerd failed", facts: func(f *Facts) {
			f.Unit = UnitState{Load: "loaded", Active: "failed", Sub: "failed", Result: "exit-code", Error: "unable to configure the Docker daemon with file /etc/docker/daemon.json: the following directives don't match any configuration option: bogus"}
		}, err: `dockerd on the host has failed (docker.service failed/failed, exit-code): "unable to configure the Docker daemon with file /etc/docker/daemon.json: the following directives don't match any configuration option: bogus"; nothing was changed: fix the host until dockerd starts`},
		{name: "dockerd restarting in a loop", facts: func(f *Facts) {
			f.Unit = UnitState{Load: "loaded", Active: "activating", Sub: "auto-restart", Result: "exit-code", Error: "failed to start daemon: boom"}
		}, err: `dockerd on the host is restarting in a loop (docker.service activating/auto-restart, exit-code): "failed to start daemon: boom"`},
		{name: "unit masked", facts: func(f *Facts) {
			f.Unit = UnitState{Load: "masked", Active: "inactive", Sub: "dead"}
			f.UnitCat = "# Unit docker.service is masked.\n"
		}, err: "docker.service is masked on the host, so dockerd cannot start; nothing was changed: unmask it (systemctl unmask docker.service)"},
		{name: "dockerd stopped: started by the setup", facts: func(f *Facts) { f.Unit = UnitState{Load: "loaded", Active: "inactive", Sub: "dead"} }, check: func(t *testing.T, p *Plan) {
			if !p.Restart {
				t.Errorf("plan %+v: a stopped dockerd must be (re)started", p)
			}
		}},
		{name: "dockerd starting (not a loop): accepted", facts: func(f *Facts) { f.Unit = UnitState{Load: "loaded", Active: "activating", Sub: "start"} }, check: func(t *testing.T, p *Plan) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fresh()
			if tc.facts != nil {
				tc.facts(f)
			}
			r := req
			if tc.req != nil {
				tc.req(&r)
			}
			p, err := PlanSetup(f, r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				var ce *ConflictError
				if strings.Contains(tc.err, " line ") && !errors.As(err, &ce) {
					t.Errorf("a conflict should be a ConflictError: %T", err)
				}
				var de *DockerdDownError
				if strings.Contains(tc.err, "dockerd on the host") || strings.Contains(tc.err, "masked") {
					if !errors.As(err, &de) {
						t.Errorf("a dockerd that cannot run should be a DockerdDownError: %T", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
		})
	}
}

func TestPlanSetupInPlace(t *testing.T) {
	ca := newTestCA(t)
	sans, _, _ := pki.ParseSANs([]string{"10.0.0.2"})
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans, PublicKey: key.Public(), Lifetime: 90 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Port: 2376, TLSDir: DefaultTLSDir, CA: ca.Cert, SANs: sans, Now: time.Now(), RenewWithin: 30 * 24 * time.Hour}
	f := &Facts{Systemd: true, Dockerd: "/usr/sbin/dockerd", Unit: UnitState{Load: "loaded", Active: "active", Sub: "running"}, UnitCat: debianUnit, ServerCert: pki.EncodeCertificate(cert), CAPEM: pki.EncodeCertificate(ca.Cert),
		PortUsers: `LISTEN 0 4096 *:2376 *:* users:(("dockerd",pid=9,fd=3))`}
	first, err := PlanSetup(&Facts{Systemd: true, Dockerd: "/usr/sbin/dockerd", UnitCat: debianUnit}, req)
	if err != nil {
		t.Fatal(err)
	}
	f.DropIn = first.Config[0].Data
	p, err := PlanSetup(f, req)
	if err != nil || !p.UpToDate() {
		t.Fatalf("in place: %+v, %v", p, err)
	}
	// Expiring within 30 days, or --force: a new certificate.
	req.Now = cert.NotAfter.Add(-10 * 24 * time.Hour)
	if p, _ := PlanSetup(f, req); !p.IssueCert || !strings.Contains(p.Why, "expires") {
		t.Errorf("expiring: %+v", p)
	}
	req.Now = time.Now()
	f.Pending = true
	if p, _ := PlanSetup(f, req); !p.Restart || p.IssueCert {
		t.Errorf("pending: %+v", p)
	}
}

func TestServerFiles(t *testing.T) {
	ca := newTestCA(t)
	sans, _, _ := pki.ParseSANs([]string{"engine.example", "10.0.0.2"})
	files, cert, err := ServerFiles(ca, sans, 24*time.Hour, "/etc/docker/tls")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{"/etc/docker/tls/ca.pem": 0o644, "/etc/docker/tls/server-cert.pem": 0o644, "/etc/docker/tls/server-key.pem": 0o600}
	for _, f := range files {
		if m, ok := want[f.Path]; !ok || m != f.Mode || f.Secret != (f.Mode == 0o600) {
			t.Errorf("%s: mode %o secret %v", f.Path, f.Mode, f.Secret)
		}
	}
	if err := pki.VerifyLeaf(cert, ca.Cert, pki.ServerProfile, time.Now()); err != nil {
		t.Errorf("the certificate does not verify as a server certificate: %v", err)
	}
	key, err := pki.ParsePrivateKey(files[2].Data, nil)
	if err != nil || pki.CheckKeyMatch(cert, key) != nil {
		t.Errorf("server-key.pem does not match: %v", err)
	}
	if Serial(cert) == "" || len(Serial(cert)) < 30 {
		t.Errorf("serial %q: want 128 random bits in hex", Serial(cert))
	}
}

func TestRemoveStaleControlDirs(t *testing.T) {
	tmp := t.TempDir()
	now := time.Now()
	mk := func(name string, age time.Duration, withSocket bool) string {
		d := filepath.Join(tmp, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if withSocket {
			if err := os.WriteFile(filepath.Join(d, "c"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chtimes(d, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
		return d
	}
	stale := mk("dtls-ssh-1", time.Hour, false)
	live := mk("dtls-ssh-2", time.Hour, true)
	fresh := mk("dtls-ssh-3", 10*time.Second, false)
	other := mk("other-1", time.Hour, false)
	removeStaleControlDirs(tmp, now)
	for d, want := range map[string]bool{stale: false, live: true, fresh: true, other: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(d), err == nil, want)
		}
	}
}
