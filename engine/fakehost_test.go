package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// fakeHost is a host behind a scripted Shell: it understands exactly the
// scripts this package sends (and fails the test on any other), keeps the
// managed files in memory, and serves "TLS" from them: Serves checks the
// files in place as dockerd would at its last restart. It stands in for
// ssh in unit tests; the e2e suite runs the same code against real hosts.
type fakeHost struct {
	t        *testing.T
	files    map[string]fakeFile
	backups  map[string]map[string]fakeFile // backup dir -> files (absent ones missing)
	pending  bool
	running  int
	restarts int
	reloads  int
	// served is the TLS files dockerd loaded at its last (re)start.
	served map[string]fakeFile
	// failRestarts makes that many next restarts fail, as a dockerd
	// refusing its configuration would.
	failRestarts int
	scripts      []string
	stdins       [][]byte
}

type fakeFile struct {
	data []byte
	mode int64
}

const fakeUnit = "# /lib/systemd/system/docker.service\n[Service]\nExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock\n"

func newFakeHost(t *testing.T, running int) *fakeHost {
	return &fakeHost{t: t, files: map[string]fakeFile{}, backups: map[string]map[string]fakeFile{}, running: running}
}

func (h *fakeHost) Host() string { return "fake-host" }

func (h *fakeHost) Run(_ context.Context, script string, stdin []byte) ([]byte, error) {
	h.t.Helper()
	h.scripts = append(h.scripts, script)
	h.stdins = append(h.stdins, stdin)
	switch {
	case script == inspectPolicyScript:
		// A host that never had a policy.
		return fmt.Appendf(nil, "arch=x86_64\npolicy=absent\nbinary_sum=\ndaemon_json=absent\nexec_start=\ndocker=active\nsocket=inactive\nservice=inactive\nunits=0\ninfo=%s\npending=0\nhas_backup=0\nend=1\n",
			base64.StdEncoding.EncodeToString([]byte("null"))), nil
	case strings.Contains(script, "has_backup=1"):
		return h.inspect(script), nil
	case strings.Contains(script, "DEST="+OriginalBackup):
		h.snapshot(OriginalBackup, true)
		h.snapshot(runBackup, h.pending)
		h.pending = true
		return nil, nil
	case script == "sh -s":
		return nil, h.write(stdin)
	case strings.HasPrefix(script, "systemctl daemon-reload && systemctl restart docker"):
		return h.restart()
	case strings.Contains(script, "SRC="):
		src, _ := strconv.Unquote(`"` + strings.Trim(between(script, "SRC=", "\n"), "'") + `"`)
		b, ok := h.backups[src]
		if !ok {
			return nil, fmt.Errorf("no backup at %s", src)
		}
		for p := range h.files {
			if managed(p) {
				delete(h.files, p)
			}
		}
		maps.Copy(h.files, b)
		return nil, nil
	case strings.HasPrefix(script, "systemctl daemon-reload; cat "):
		dj := h.files[DaemonJSONPath].data
		return fmt.Appendf(nil, "%s\n0\n%d\n", dj, h.running), nil
	case strings.HasPrefix(script, "journalctl"):
		return []byte("level=error msg=\"fake journal line\"\n"), nil
	case script == "rm -f "+pendingFile+"; rm -rf "+runBackup:
		h.pending = false
		delete(h.backups, runBackup)
		return nil, nil
	case script == "rm -rf "+HostStateDir:
		h.pending = false
		clear(h.backups)
		delete(h.files, hostStateFile)
		return nil, nil
	case script == "[ -d "+OriginalBackup+" ] && echo yes || echo no":
		if _, ok := h.backups[OriginalBackup]; ok {
			return []byte("yes\n"), nil
		}
		return []byte("no\n"), nil
	case strings.HasPrefix(script, "ss -Hltn 'sport = :"):
		return nil, nil // nothing listens: the fake serves only through serves()
	case strings.HasPrefix(script, "docker info --format '{{.LiveRestoreEnabled}}'"):
		return []byte("true\n"), nil
	}
	h.t.Fatalf("the fake host does not know this script:\n%s", script)
	return nil, nil
}

func between(s, from, to string) string {
	_, after, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(after, to)
	return v
}

func managed(p string) bool {
	return p == DropInPath || p == DaemonJSONPath || strings.HasSuffix(p, ".pem")
}

func (h *fakeHost) snapshot(dest string, once bool) {
	if _, ok := h.backups[dest]; ok && once {
		return
	}
	b := map[string]fakeFile{}
	for p, f := range h.files {
		if managed(p) {
			b[p] = f
		}
	}
	h.backups[dest] = b
}

// write carries out writeFiles' script: heredocs of base64 into
// temporary files, chmod, rename, then the commands after.
func (h *fakeHost) write(stdin []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(stdin))
	tmp := map[string]fakeFile{}
	var cur string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "base64 -d >"):
			cur = strings.Trim(between(line, ">", " <<"), "'")
			data.Reset()
		case line == "DOCKER_TLS_EOF":
			b, err := base64.StdEncoding.DecodeString(data.String())
			if err != nil {
				return err
			}
			tmp[cur] = fakeFile{data: b}
			cur = ""
		case cur != "":
			data.WriteString(line)
		case strings.HasPrefix(line, "chmod "):
			f := strings.Fields(line)
			mode, _ := strconv.ParseInt(f[1], 8, 32)
			p := strings.Trim(f[2], "'")
			tf := tmp[p]
			tf.mode = mode
			tmp[p] = tf
		case strings.HasPrefix(line, "mv -f "):
			f := strings.Fields(line)
			h.files[strings.Trim(f[3], "'")] = tmp[strings.Trim(f[2], "'")]
		case line == "systemctl reload docker":
			h.reloads++
		case strings.HasPrefix(line, "rm -f "+pendingFile):
			h.pending = false
			delete(h.backups, runBackup)
		}
	}
	return nil
}

func (h *fakeHost) restart() ([]byte, error) {
	if h.failRestarts > 0 {
		h.failRestarts--
		return []byte("Job for docker.service failed"), errors.New("exit status 1")
	}
	h.restarts++
	h.served = map[string]fakeFile{}
	for p, f := range h.files {
		if strings.HasSuffix(p, ".pem") {
			h.served[p] = f
		}
	}
	return nil, nil
}

func (h *fakeHost) inspect(script string) []byte {
	tlsDir, _ := strconv.Unquote(`"` + strings.Trim(between(script, "TLSDIR=", "\n"), "'") + `"`)
	b64 := func(p string) string {
		f, ok := h.files[p]
		if !ok {
			return "absent"
		}
		return base64.StdEncoding.EncodeToString(f.data)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "os=Debian GNU/Linux 12 (bookworm)\nsystemd=1\ndockerd=/usr/sbin/dockerd\ndockerd_version=Docker version 20.10.24\n")
	fmt.Fprintf(&b, "unit_LoadState=loaded\nunit_ActiveState=active\nunit_SubState=running\nunit_Result=success\n")
	fmt.Fprintf(&b, "unit_cat=%s\n", base64.StdEncoding.EncodeToString([]byte(fakeUnit)))
	fmt.Fprintf(&b, "daemon_json=%s\ndropin=%s\n", b64(DaemonJSONPath), b64(DropInPath))
	fmt.Fprintf(&b, "hostname=fake\nfqdn=fake.example.test\naddrs=192.0.2.7/24 \n")
	fmt.Fprintf(&b, "swarm=inactive\nlive_restore=true\nrunning=%d\nserver_version=20.10.24\n", h.running)
	users := ""
	if _, ok := h.served[path.Join(tlsDir, "server-cert.pem")]; ok {
		users = `LISTEN 0 4096 *:2376 *:* users:(("dockerd",pid=1,fd=3))`
	}
	fmt.Fprintf(&b, "port_users=%s\n", base64.StdEncoding.EncodeToString([]byte(users)))
	fmt.Fprintf(&b, "server_cert=%s\nca=%s\nhost_state=%s\n", b64(path.Join(tlsDir, "server-cert.pem")), b64(path.Join(tlsDir, "ca.pem")), b64(hostStateFile))
	fmt.Fprintf(&b, "pending=%d\n", map[bool]int{false: 0, true: 1}[h.pending])
	_, has := h.backups[OriginalBackup]
	fmt.Fprintf(&b, "has_backup=%d\n", map[bool]int{false: 0, true: 1}[has])
	return []byte(b.String())
}

// serves is the check from the laptop: what dockerd loaded at its last
// restart is a server certificate for name that a client trusting roots
// accepts, and a client certificate from client's CA is one it accepts.
func (h *fakeHost) serves(tlsDir string, roots []*x509.Certificate, client *x509.Certificate) func(context.Context) error {
	return func(context.Context) error {
		certPEM, ok := h.served[path.Join(tlsDir, "server-cert.pem")]
		if !ok {
			return errors.New("dockerd serves no TLS")
		}
		cert, err := pki.ParseCertificate(certPEM.data)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		for _, r := range roots {
			pool.AddCert(r)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "fake", CurrentTime: time.Now()}); err != nil {
			return fmt.Errorf("the server certificate: %w", err)
		}
		cas, err := pki.ParseCertificates(h.served[path.Join(tlsDir, "ca.pem")].data)
		if err != nil {
			return err
		}
		trusted := x509.NewCertPool()
		for _, c := range cas {
			trusted.AddCert(c)
		}
		if _, err := client.Verify(x509.VerifyOptions{Roots: trusted, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return fmt.Errorf("dockerd refuses the client: %w", err)
		}
		return nil
	}
}
