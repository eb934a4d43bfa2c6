package engine

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// Request is what a setup asks for.
type Request struct {
	// Port is the TCP port dockerd serves TLS on, on every address.
	Port int
	// TLSDir is where the CA, certificate and key go on the host.
	TLSDir string
	// CA is the CA the server certificate must come from.
	CA *x509.Certificate
	// SANs are the names and addresses the certificate must cover.
	SANs pki.SANs
	// RestartContainers allows a restart that stops running containers.
	RestartContainers bool
	// Force re-issues the server certificate and rewrites the
	// configuration even when they are in place.
	Force bool
	// Reissue re-issues the server certificate (engine renew); the
	// configuration is rewritten only where it differs.
	Reissue bool
	// RenewWithin re-issues a certificate that expires sooner than this.
	RenewWithin time.Duration
	Now         time.Time
}

// Mode says where the TLS options go on a host.
type Mode string

const (
	// ModeDropIn: a systemd drop-in of ours restating ExecStart with the
	// TLS flags added (the host keeps -H in its unit, as Debian does).
	ModeDropIn Mode = "systemd drop-in"
	// ModeDaemonJSON: daemon.json, where the host already lists its
	// sockets ("hosts") and so has no -H on the command line.
	ModeDaemonJSON Mode = "daemon.json"
)

// File is a whole file to write on the host.
type File struct {
	Path string
	Data []byte
	Mode uint32
	// Secret files are never shown, logged or kept on the laptop.
	Secret bool
}

// Plan is what a setup will change on a host, decided from its facts
// alone, before anything is changed.
type Plan struct {
	Mode Mode
	// Config are the configuration files to write (drop-in, daemon.json).
	Config []File
	// IssueCert is true when a new server certificate is needed; Why says
	// why (none, another CA, names missing, expiring, --force).
	IssueCert bool
	Why       string
	// LiveRestoreFirst, when set, is daemon.json with live-restore on and
	// nothing else changed: written and loaded by a reload before the
	// restart, so running containers survive the restart.
	LiveRestoreFirst []byte
	// Restart is true when dockerd must restart (new files or options).
	Restart bool
	// StopsContainers is true when the restart stops running containers
	// (allowed by RestartContainers).
	StopsContainers bool
	// Notes are what the plan will do, in the order it does it, for the
	// user (and --dry-run).
	Notes []string
}

// UpToDate says nothing needs to change.
func (p *Plan) UpToDate() bool { return !p.Restart && !p.IssueCert && len(p.Config) == 0 }

// ConflictError is a setting on the host that docker tls would have to
// overwrite; it never does.
type ConflictError struct {
	File string
	Line int
	What string
	Fix  string
}

func (e *ConflictError) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s line %d", e.File, e.Line)
	}
	return fmt.Sprintf("%s: %s: %s", where, e.What, e.Fix)
}

// PlanSetup decides what to change on a host. It reads only its arguments.
func PlanSetup(f *Facts, r Request) (*Plan, error) {
	if err := checkHost(f); err != nil {
		return nil, err
	}
	p := &Plan{}
	dj, err := parseDaemonJSON(f.DaemonJSON)
	if err != nil {
		return nil, err
	}
	execStart, later, err := effectiveExecStart(f.UnitCat)
	if err != nil {
		return nil, err
	}
	listen := fmt.Sprintf("tcp://0.0.0.0:%d", r.Port)
	paths := TLSPathsIn(r.TLSDir)

	// Where the options go: the host's own habit.
	if _, ok := dj.keys["hosts"]; ok {
		p.Mode = ModeDaemonJSON
	} else {
		p.Mode = ModeDropIn
	}
	if err := checkConflicts(f, execStart, dj, p.Mode, r); err != nil {
		return nil, err
	}

	// The configuration as it must be.
	newDJ := dj
	switch p.Mode {
	case ModeDropIn:
		if len(later) > 0 {
			u := later[0]
			return nil, &ConflictError{File: u.File, Line: u.Line, What: "this drop-in sets ExecStart and comes after docker-tls.conf, so it would undo the TLS flags",
				Fix: "move its ExecStart into a drop-in named before docker-tls.conf, or remove it"}
		}
		dropIn := renderDropIn(execStart.Command, listen, paths)
		if !bytes.Equal(f.DropIn, dropIn) || r.Force {
			p.Config = append(p.Config, File{Path: DropInPath, Data: dropIn, Mode: 0o644})
			p.Notes = append(p.Notes, fmt.Sprintf("write %s: dockerd %s -H %s with the TLS flags", DropInPath, strings.Join(strings.Fields(execStart.Command)[1:], " "), listen))
		}
	case ModeDaemonJSON:
		newDJ = dj.with(map[string]any{"tlsverify": true, "tlscacert": paths.CA, "tlscert": paths.Cert, "tlskey": paths.Key})
		newDJ = newDJ.withHost(listen)
	}

	if newDJ, err = restartSafety(f, r, execStart, dj, newDJ, p); err != nil {
		return nil, err
	}
	if newDJ.changed {
		p.Config = append(p.Config, File{Path: DaemonJSONPath, Data: newDJ.render(), Mode: 0o644})
		p.Notes = append(p.Notes, "write "+DaemonJSONPath+describeJSONChange(dj, newDJ))
	}
	if p.LiveRestoreFirst != nil {
		p.Notes = append([]string{fmt.Sprintf("%d containers are running: switch live-restore on first (systemctl reload docker), so they keep running", f.Running)}, p.Notes...)
	}

	// The server certificate.
	p.IssueCert, p.Why = needCert(f, r)
	if p.IssueCert {
		p.Notes = append([]string{fmt.Sprintf("issue a server certificate for %s (%s); its key is made here and written only to %s (0600)", strings.Join(r.SANs.Strings(), ", "), p.Why, paths.Key)}, p.Notes...)
	}
	planRestart(p, f, r)
	return p, nil
}

// checkHost refuses a host docker tls cannot set up: no systemd, no
// dockerd, a docker unit that cannot run, or none.
func checkHost(f *Facts) error {
	if !f.Systemd {
		return errors.New("the host does not run systemd: set dockerd up by hand with the files and flags of `docker tls server issue` and `docker tls daemon-config --format flags`")
	}
	if f.Dockerd == "" {
		return errors.New("dockerd is not installed on the host: install Docker first (on Debian and Ubuntu: apt-get install docker.io)")
	}
	if err := checkUnit(f.Unit); err != nil {
		return err
	}
	if f.UnitCat == "" {
		return errors.New("the host has no docker.service unit: docker tls sets up engines that systemd runs")
	}
	if f.InfoRefused != "" {
		return &LocalCallsRefusedError{Answer: f.InfoRefused}
	}
	return nil
}

// LocalCallsRefusedError is a host whose authorization plugin refuses the
// host's own docker info: without it, whether a restart would stop
// running containers is unknown, so nothing is changed.
type LocalCallsRefusedError struct{ Answer string }

func (e *LocalCallsRefusedError) Error() string {
	return "dockerd on the host refuses the host's own docker info (" + e.Answer + "), which tells whether a restart would stop running containers"
}

// checkConflicts refuses TLS settings docker tls did not write, and a
// port something else holds.
func checkConflicts(f *Facts, execStart unitLine, dj daemonJSON, mode Mode, r Request) error {
	paths := TLSPathsIn(r.TLSDir)
	for _, flag := range []string{"--tlsverify", "--tlscacert", "--tlscert", "--tlskey", "--tls"} {
		if hasFlag(execStart.Command, flag) {
			return &ConflictError{File: execStart.File, Line: execStart.Line, What: "dockerd's ExecStart already has " + flag,
				Fix: "docker tls does not change TLS settings it did not write; remove them (and the files they name) or keep setting this engine up by hand"}
		}
	}
	if hasTCPHost(execStart.Command, r.Port) {
		return &ConflictError{File: execStart.File, Line: execStart.Line, What: fmt.Sprintf("dockerd's ExecStart already listens on port %d", r.Port),
			Fix: "remove that -H, or choose another --port"}
	}
	want := map[string]any{"tlsverify": true, "tlscacert": paths.CA, "tlscert": paths.Cert, "tlskey": paths.Key}
	for _, k := range []string{"tls", "tlsverify", "tlscacert", "tlscert", "tlskey"} {
		raw, ok := dj.keys[k]
		if !ok {
			continue
		}
		if w, mine := want[k]; mode == ModeDaemonJSON && mine && jsonEqual(raw, w) {
			continue
		}
		return &ConflictError{File: DaemonJSONPath, Line: dj.line(k), What: fmt.Sprintf("%q is already set", k),
			Fix: "docker tls does not change TLS settings it did not write; remove it, or keep setting this engine up by hand"}
	}
	if f.PortUsers != "" && !strings.Contains(f.PortUsers, "dockerd") {
		return fmt.Errorf("port %d on the host is already taken (%s): free it or choose another --port", r.Port, firstField(f.PortUsers))
	}

	return nil
}

// restartSafety makes sure running containers survive the restart:
// live-restore switched on (by a reload first, when dockerd runs with it
// off) or the restart refused, unless RestartContainers. It returns the
// daemon.json to write.
func restartSafety(f *Facts, r Request, execStart unitLine, dj, newDJ daemonJSON, p *Plan) (daemonJSON, error) {
	// Restart safety: running containers survive a restart only when the
	// dockerd that stops has live-restore on (the running value, which a
	// reload can switch) and the one that starts has it in its
	// configuration (else it kills what it finds running).
	configured := hasFlag(execStart.Command, "--live-restore")
	if raw, ok := dj.keys["live-restore"]; ok {
		configured = jsonEqual(raw, true)
	}
	if f.Running > 0 && (!f.LiveRestore || !configured) {
		switch {
		case f.Swarm == "active" && !r.RestartContainers:
			return newDJ, fmt.Errorf("%d containers are running, live-restore is off and cannot be switched on in swarm mode: restarting dockerd would stop them; run again with --restart-containers to accept that", f.Running)
		case f.Swarm == "active":
			p.StopsContainers = true
		default:
			if raw, ok := dj.keys["live-restore"]; ok && !jsonEqual(raw, true) {
				if !r.RestartContainers {
					return newDJ, &ConflictError{File: DaemonJSONPath, Line: dj.line("live-restore"), What: fmt.Sprintf("live-restore is off and %d containers are running", f.Running),
						Fix: "a restart would stop them: set it to true, or run again with --restart-containers"}
				}
				p.StopsContainers = true
			} else if !configured {
				newDJ = newDJ.with(map[string]any{"live-restore": true})
				if !f.LiveRestore {
					p.LiveRestoreFirst = dj.with(map[string]any{"live-restore": true}).render()
				}
			} else {
				// In the configuration (a flag) but not running: a reload
				// reads only daemon.json, so only a restart would apply it.
				if !r.RestartContainers {
					return newDJ, fmt.Errorf("%d containers are running and dockerd runs with live-restore off although its ExecStart has --live-restore (not restarted since): a restart would stop them; restart dockerd in a window of your choosing first, or run again with --restart-containers", f.Running)
				}
				p.StopsContainers = true
			}
		}
	}
	return newDJ, nil
}

// planRestart adds the notes on an interrupted or idle setup, and the
// restart with its check, when the plan needs one.
func planRestart(p *Plan, f *Facts, r Request) {
	served := strings.Contains(f.PortUsers, "dockerd")
	switch {
	case f.Pending:
		p.Notes = append([]string{"an earlier setup of this host was interrupted: finish it"}, p.Notes...)
	case !served && !p.IssueCert && len(p.Config) == 0:
		p.Notes = append([]string{fmt.Sprintf("the configuration is in place but dockerd does not serve port %d yet", r.Port)}, p.Notes...)
	}
	p.Restart = p.IssueCert || len(p.Config) > 0 || f.Unit.Active != "active" || f.Pending || !served
	if p.Restart {
		what := "restart dockerd (systemctl restart docker)"
		if p.StopsContainers {
			what += fmt.Sprintf(": this STOPS the %d running containers (--restart-containers)", f.Running)
		} else if f.Running > 0 {
			what += fmt.Sprintf(": the %d running containers keep running (live-restore)", f.Running)
		}
		p.Notes = append(p.Notes, what, fmt.Sprintf("check from here that dockerd serves mutual TLS on port %d; on any failure put every file back and restart", r.Port))
	}
}

// needCert says whether the host's server certificate must be (re)issued.
func needCert(f *Facts, r Request) (bool, string) {
	if r.Force {
		return true, "--force"
	}
	if r.Reissue {
		return true, "renewal"
	}
	if f.ServerCert == nil {
		return true, "none yet"
	}
	cert, err := pki.ParseCertificate(f.ServerCert)
	if err != nil {
		return true, "the present one cannot be read"
	}
	if cert.CheckSignatureFrom(r.CA) != nil || !bytes.Equal(f.CAPEM, pki.EncodeCertificate(r.CA)) {
		return true, "the present one is from another CA"
	}
	have := map[string]bool{}
	for _, s := range pki.CertSANs(cert).Strings() {
		have[s] = true
	}
	for _, s := range r.SANs.Strings() {
		if !have[s] {
			return true, "the present one does not cover " + s
		}
	}
	if cert.NotAfter.Sub(r.Now) < r.RenewWithin {
		return true, "the present one expires on " + cert.NotAfter.UTC().Format("2006-01-02")
	}
	return false, ""
}

// TLSPaths are the TLS files on the host.
type TLSPaths struct{ CA, Cert, Key string }

// TLSPathsIn are the TLS files in directory dir on the host.
func TLSPathsIn(dir string) TLSPaths {
	return TLSPaths{CA: path.Join(dir, "ca.pem"), Cert: path.Join(dir, "server-cert.pem"), Key: path.Join(dir, "server-key.pem")}
}

func renderDropIn(execStart, listen string, p TLSPaths) []byte {
	return fmt.Appendf(nil, `# Written by docker tls engine setup; docker tls engine teardown removes it
# and puts back what was here before. ExecStart is the unit's own, with the
# TLS listener added.
[Service]
ExecStart=
ExecStart=%s -H %s --tlsverify --tlscacert=%s --tlscert=%s --tlskey=%s
`, execStart, listen, p.CA, p.Cert, p.Key)
}

// unitLine is an ExecStart= line and where it is.
type unitLine struct {
	Command string
	File    string
	Line    int
}

// effectiveExecStart reads `systemctl cat` output the way systemd applies
// it (files in order, an empty ExecStart= clears the list), leaving out our
// own drop-in. later are the ExecStart lines of drop-ins applied after
// ours, which would undo a drop-in of ours.
func effectiveExecStart(cat string) (cmd unitLine, later []unitLine, err error) {
	var list []unitLine
	file, section := "", ""
	lineNo := 0
	var afterOurs []unitLine
	lines := strings.Split(cat, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "# /") {
			file, section, lineNo = strings.TrimPrefix(l, "# "), "", 0
			continue
		}
		lineNo++
		start := lineNo
		// Continuation lines end with a backslash.
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			lineNo++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(lines[i])
		}
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") {
			section = t
			continue
		}
		if section != "[Service]" || !strings.HasPrefix(t, "ExecStart=") {
			continue
		}
		if file == DropInPath {
			continue
		}
		v := strings.TrimSpace(strings.TrimPrefix(t, "ExecStart="))
		u := unitLine{Command: v, File: file, Line: start}
		if path.Dir(file) == DropInDir && path.Base(file) > path.Base(DropInPath) {
			afterOurs = append(afterOurs, u)
		}
		if v == "" {
			list = nil
			continue
		}
		list = append(list, u)
	}
	if len(list) != 1 {
		return unitLine{}, nil, fmt.Errorf("docker.service has %d ExecStart commands, docker tls expects one", len(list))
	}
	return list[0], afterOurs, nil
}

func hasFlag(cmd, flag string) bool {
	for _, a := range strings.Fields(cmd) {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

func hasTCPHost(cmd string, port int) bool {
	f := strings.Fields(cmd)
	for i, a := range f {
		v := ""
		switch {
		case (a == "-H" || a == "--host") && i+1 < len(f):
			v = f[i+1]
		case strings.HasPrefix(a, "-H="), strings.HasPrefix(a, "--host="):
			_, v, _ = strings.Cut(a, "=")
		case strings.HasPrefix(a, "-Htcp://"):
			v = a[2:]
		}
		if strings.HasPrefix(v, "tcp://") && strings.HasSuffix(v, fmt.Sprintf(":%d", port)) {
			return true
		}
	}
	return false
}

// daemonJSON is /etc/docker/daemon.json as a set of keys, kept in the
// order they had so a rewrite changes only what it must.
type daemonJSON struct {
	raw     []byte
	keys    map[string]json.RawMessage
	order   []string
	changed bool
}

func parseDaemonJSON(data []byte) (daemonJSON, error) {
	d := daemonJSON{raw: data, keys: map[string]json.RawMessage{}}
	if len(bytes.TrimSpace(data)) == 0 {
		return d, nil
	}
	if err := json.Unmarshal(data, &d.keys); err != nil {
		return d, fmt.Errorf("%s on the host is not valid JSON (%v): dockerd would not start with it either; fix it first", DaemonJSONPath, err)
	}
	// The keys in file order: '{', then key and whole value, in turn.
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err == nil {
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			k, _ := tok.(string)
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				break
			}
			d.order = append(d.order, k)
		}
	}
	if len(d.order) != len(d.keys) {
		// Duplicate keys: keep a sorted order.
		d.order = d.order[:0]
		for k := range d.keys {
			d.order = append(d.order, k)
		}
		sort.Strings(d.order)
	}
	return d, nil
}

// line is the line of key in the original file (0 if not found).
func (d daemonJSON) line(key string) int {
	i := bytes.Index(d.raw, []byte(`"`+key+`"`))
	if i < 0 {
		return 0
	}
	return bytes.Count(d.raw[:i], []byte("\n")) + 1
}

// with is d with keys set (new keys at the end).
func (d daemonJSON) with(set map[string]any) daemonJSON {
	n := daemonJSON{raw: d.raw, keys: map[string]json.RawMessage{}, order: append([]string(nil), d.order...), changed: d.changed}
	for k, v := range d.keys {
		n.keys[k] = v
	}
	names := make([]string, 0, len(set))
	for k := range set {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b, _ := json.Marshal(set[k])
		old, ok := n.keys[k]
		if !ok {
			n.order = append(n.order, k)
		}
		if !ok || !jsonEqual(old, set[k]) {
			n.changed = true
		}
		n.keys[k] = b
	}
	return n
}

// without is d without key.
func (d daemonJSON) without(key string) daemonJSON {
	if _, ok := d.keys[key]; !ok {
		return d
	}
	n := daemonJSON{raw: d.raw, keys: map[string]json.RawMessage{}, changed: true}
	for k, v := range d.keys {
		if k != key {
			n.keys[k] = v
		}
	}
	for _, k := range d.order {
		if k != key {
			n.order = append(n.order, k)
		}
	}
	return n
}

// withHost adds listen to "hosts" if it is not there.
func (d daemonJSON) withHost(listen string) daemonJSON {
	var hosts []string
	_ = json.Unmarshal(d.keys["hosts"], &hosts)
	for _, h := range hosts {
		if h == listen {
			return d
		}
	}
	return d.with(map[string]any{"hosts": append(hosts, listen)})
}

// render writes the keys in order, indented as docker's docs show it.
// The unchanged file renders to its own bytes.
func (d daemonJSON) render() []byte {
	if !d.changed {
		return d.raw
	}
	var b bytes.Buffer
	b.WriteString("{\n")
	for i, k := range d.order {
		kb, _ := json.Marshal(k)
		var v bytes.Buffer
		if err := json.Indent(&v, d.keys[k], "  ", "  "); err != nil {
			v.Reset()
			v.Write(d.keys[k])
		}
		fmt.Fprintf(&b, "  %s: %s", kb, v.Bytes())
		if i < len(d.order)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func describeJSONChange(old, new daemonJSON) string {
	var set []string
	for _, k := range new.order {
		if !bytes.Equal(old.keys[k], new.keys[k]) {
			set = append(set, fmt.Sprintf("%s=%s", k, new.keys[k]))
		}
	}
	if len(set) == 0 {
		return ""
	}
	return ": " + strings.Join(set, ", ")
}

func jsonEqual(raw json.RawMessage, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	var a, c any
	if json.Unmarshal(raw, &a) != nil || json.Unmarshal(b, &c) != nil {
		return false
	}
	return fmt.Sprint(a) == fmt.Sprint(c)
}

func firstField(s string) string {
	l := strings.SplitN(s, "\n", 2)[0]
	return strings.Join(strings.Fields(l), " ")
}
