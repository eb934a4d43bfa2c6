package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/docker-tls/docker-tls/authz"
	"github.com/docker-tls/docker-tls/internal/crashpoint"
	"github.com/docker-tls/docker-tls/policy"
)

// An engine's policy lives on its host as the docker-tls binary serving
// dockerd as its authorization plugin "docker-tls" (package authz), started
// by systemd from a socket of its own: while the plugin restarts, calls
// wait on that socket instead of failing. docker.service is ordered after
// the socket, because dockerd exits at start when an authorization plugin
// it is configured with does not answer.
const (
	PluginName       = "docker-tls"
	PluginSocket     = "/run/docker/plugins/" + PluginName + ".sock"
	PluginBinaryPath = "/usr/local/lib/docker-tls/docker-tls"
	PolicyDir        = "/etc/docker-tls"
	PolicyPath       = PolicyDir + "/policy.json"
	CRLPath          = PolicyDir + "/crl.pem"
	AuditDir         = "/var/log/docker-tls"
	AuditPath        = AuditDir + "/audit.log"

	pluginSocketUnit  = "docker-tls-authz.socket"
	pluginServiceUnit = "docker-tls-authz.service"
	socketUnitPath    = "/etc/systemd/system/" + pluginSocketUnit
	serviceUnitPath   = "/etc/systemd/system/" + pluginServiceUnit
	orderDropInPath   = DropInDir + "/docker-tls-authz.conf"

	// PolicyBackup holds the policy's files as they were before the first
	// policy set (taken once); policy off and teardown restore them.
	PolicyBackup    = HostStateDir + "/policy-backup"
	policyRunBackup = HostStateDir + "/policy-previous"
	policyPending   = HostStateDir + "/policy-pending"
)

// policyPaths are the files and directories a policy adds. The audit
// trail is among them only when asked: policy off keeps it, teardown does
// not.
func policyPaths(audit bool) (files, dirs []string) {
	files = []string{socketUnitPath, serviceUnitPath, orderDropInPath, PluginBinaryPath, PolicyPath, CRLPath}
	dirs = []string{path.Dir(PluginBinaryPath), PolicyDir}
	if audit {
		files = append(files, AuditPath, AuditPath+".1")
		dirs = append(dirs, AuditDir)
	}
	return files, dirs
}

func policyLists(files, dirs []string) string {
	return "FILES=" + shellQuote(strings.Join(files, "\n")) + "; DIRS=" + shellQuote(strings.Join(dirs, "\n")) + "\n"
}

// The units, as the host gets them. The service takes its socket from
// systemd (LISTEN_FDS) and is restarted whatever ends it, without a limit
// on how often: it is on every API call's path.
func socketUnitText() []byte {
	return []byte(`# Written by docker tls engine policy set; docker tls engine policy off removes it.
[Unit]
Description=docker-tls authorization plugin socket (the engine's policy)
PartOf=` + pluginServiceUnit + `

[Socket]
ListenStream=` + PluginSocket + `
SocketMode=0600
DirectoryMode=0755
RemoveOnStop=yes
`)
}

func serviceUnitText() []byte {
	return []byte(`# Written by docker tls engine policy set; docker tls engine policy off removes it.
[Unit]
Description=docker-tls authorization plugin (the engine's policy)
Requires=` + pluginSocketUnit + `
After=` + pluginSocketUnit + `
StartLimitIntervalSec=0

[Service]
ExecStart=` + PluginBinaryPath + ` authz-plugin --config ` + PolicyPath + ` --crl ` + CRLPath + ` --audit ` + AuditPath + `
Restart=always
RestartSec=200ms
NoNewPrivileges=yes
# The plugin does tens of microseconds of work per API call; on a busy
# engine Go's scheduling across processors and frequent collections of a
# tiny heap cost it more than that. One processor also keeps it from
# taking more than a core from the engine. A drop-in can change both.
Environment=GOMAXPROCS=1 GOGC=400
`)
}

func orderDropInText() []byte {
	return []byte(`# Written by docker tls engine policy set: dockerd checks its authorization
# plugin when it starts, so the plugin's socket comes first.
[Unit]
Wants=` + pluginSocketUnit + `
After=` + pluginSocketUnit + `
`)
}

// PolicyFacts are what InspectPolicy read on a host about its policy.
type PolicyFacts struct {
	// Arch is the host's machine (uname -m).
	Arch string
	// Config is the policy file, nil when absent.
	Config []byte
	// BinarySum is the SHA-256 of the installed plugin binary, "" when
	// absent.
	BinarySum  string
	DaemonJSON []byte
	// ExecStart is docker.service's command line as systemd has it.
	ExecStart string
	// Docker, Socket and Service are systemctl is-active of docker.service
	// and the plugin's two units.
	Docker, Socket, Service string
	// Units says the plugin's unit files are installed.
	Units bool
	// Enabled says dockerd consults the plugin now: a probe call the
	// plugin saw. Info is what docker info answered (its authorization
	// plugins, or its refusal); Probe why the probe could not be made.
	Enabled bool
	Info    string
	Probe   string
	// Status is what the running plugin says it enforces (JSON), nil when
	// it did not answer.
	Status []byte
	// Pending says a policy change was interrupted; HasBackup that a
	// policy was set once (its pre-policy backup exists).
	Pending, HasBackup bool
}

const inspectPolicyScript = `
b64() { if [ -e "$1" ]; then base64 -w0 <"$1"; echo; else echo absent; fi; }
echo "arch=$(uname -m)"
echo "policy=$(b64 ` + PolicyPath + `)"
if [ -f ` + PluginBinaryPath + ` ]; then echo "binary_sum=$(sha256sum ` + PluginBinaryPath + ` | cut -d' ' -f1)"; else echo binary_sum=; fi
echo "daemon_json=$(b64 ` + DaemonJSONPath + `)"
echo "exec_start=$(systemctl show ` + UnitName + ` -p ExecStart --value 2>/dev/null | base64 -w0)"
echo "docker=$(systemctl is-active ` + UnitName + ` 2>/dev/null)"
echo "socket=$(systemctl is-active ` + pluginSocketUnit + ` 2>/dev/null)"
echo "service=$(systemctl is-active ` + pluginServiceUnit + ` 2>/dev/null)"
if [ -e ` + socketUnitPath + ` ]; then echo units=1; else echo units=0; fi
echo "info=$(docker info --format '{{json .Plugins.Authorization}}' 2>&1 | base64 -w0)"
if [ -x ` + PluginBinaryPath + ` ] && [ "$(systemctl is-active ` + pluginSocketUnit + ` 2>/dev/null)" = active ]; then
  echo "consulted=$(` + PluginBinaryPath + ` authz-plugin --consulted 2>&1 | tail -n 1 | base64 -w0)"
  echo "status=$(` + PluginBinaryPath + ` authz-plugin --status 2>/dev/null | base64 -w0)"
else echo consulted=; fi
if [ -e ` + policyPending + ` ]; then echo pending=1; else echo pending=0; fi
if [ -d ` + PolicyBackup + ` ]; then echo has_backup=1; else echo has_backup=0; fi
echo end=1
`

// InspectPolicy reads a host's policy facts, changing nothing.
func InspectPolicy(ctx context.Context, s Shell) (*PolicyFacts, error) {
	out, err := s.Run(ctx, inspectPolicyScript, nil)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", s.Host(), err)
	}
	return parsePolicyFacts(out)
}

func parsePolicyFacts(out []byte) (*PolicyFacts, error) {
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 8<<20)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = v
		}
	}
	if kv["end"] != "1" {
		return nil, fmt.Errorf("the host's answer was cut short (%d bytes)", len(out))
	}
	f := &PolicyFacts{Arch: kv["arch"], BinarySum: kv["binary_sum"], Docker: kv["docker"], Socket: kv["socket"], Service: kv["service"],
		Units: kv["units"] == "1", Pending: kv["pending"] == "1", HasBackup: kv["has_backup"] == "1"}
	var err error
	if f.Config, err = factFile("policy", kv["policy"]); err != nil {
		return nil, err
	}
	if f.DaemonJSON, err = factFile("daemon_json", kv["daemon_json"]); err != nil {
		return nil, err
	}
	var probe, status string
	for k, into := range map[string]*string{"exec_start": &f.ExecStart, "info": &f.Info, "consulted": &probe, "status": &status} {
		b, err := base64.StdEncoding.DecodeString(kv[k])
		if err != nil {
			return nil, fmt.Errorf("host answered an unreadable %s: %w", k, err)
		}
		*into = strings.TrimSpace(string(b))
	}
	if status != "" {
		f.Status = []byte(status)
	}
	switch probe {
	case "yes":
		f.Enabled = true
	case "no":
	default:
		// No plugin to ask, or it did not answer: what docker info says.
		f.Enabled = consulted(f.Info)
		f.Probe = probe
	}
	return f, nil
}

// consulted reads docker info's answer: the plugin is in its list (dockerd
// 20.10 lists only those it started with), or it refused the call itself
// (a policy that refuses local calls).
func consulted(info string) bool {
	var list []string
	if json.Unmarshal([]byte(info), &list) == nil {
		return slices.Contains(list, PluginName)
	}
	return strings.Contains(info, "authorization denied by plugin "+PluginName)
}

// PolicyRequest is a policy to put in force on a host.
type PolicyRequest struct {
	// Config is the policy file (package authz's format).
	Config []byte
	// Binary is the docker-tls executable the host runs as the plugin.
	Binary []byte
	// CRL is the CA's revocation list (PEM), installed before dockerd
	// consults the plugin; nil: none.
	CRL []byte
}

// PolicyPlan is what a policy set changes on a host.
type PolicyPlan struct {
	// Binary is set when the host's plugin binary differs from the one to
	// install.
	Binary []byte
	// Files are the unit files and the policy file that differ.
	Files []File
	// DaemonJSON, when set, is daemon.json naming the plugin: written, then
	// loaded by a reload (never a restart), once the plugin answers.
	DaemonJSON []byte
	// RestartPlugin: the running plugin's binary or unit changes.
	RestartPlugin bool
	// Digest is the SHA-256 of Config, which the plugin must report before
	// the change is done.
	Digest string
	// CRL is installed (when newer than the one held) before dockerd is
	// told to consult the plugin.
	CRL []byte
	// Was is the digest of the policy file the plan was made from ("" when
	// there was none): the file is replaced only while it still is that
	// one, so two admins' changes never overwrite each other unseen.
	Was string
	// First says no policy was ever set on the host: a rollback also
	// removes the policy's backup.
	First bool
	Notes []string
}

// UpToDate says the host enforces the policy already.
func (p *PolicyPlan) UpToDate() bool {
	return p.Binary == nil && len(p.Files) == 0 && p.DaemonJSON == nil
}

// PlanPolicy decides what putting r in force on a host with facts f
// changes, from the facts alone.
func PlanPolicy(f *PolicyFacts, r PolicyRequest) (*PolicyPlan, error) {
	if f.Docker != "active" {
		return nil, fmt.Errorf("dockerd is not running on the host (docker.service is %s): a policy is turned on by a reload of a running dockerd", orUnknown(f.Docker))
	}
	if err := CheckBinaryArch(r.Binary, f.Arch); err != nil {
		return nil, err
	}
	if hasFlag(f.ExecStart, "--authorization-plugin") {
		return nil, &ConflictError{File: "docker.service's ExecStart", What: "it names an authorization plugin (--authorization-plugin)",
			Fix: "docker tls lists its plugin in " + DaemonJSONPath + ", and dockerd refuses an option given both ways; move it to authorization-plugins in " + DaemonJSONPath + " first"}
	}
	dj, err := parseDaemonJSON(f.DaemonJSON)
	if err != nil {
		return nil, err
	}
	p := &PolicyPlan{First: !f.HasBackup, Digest: digest(r.Config), CRL: r.CRL}
	if f.Config != nil {
		p.Was = digest(f.Config)
	}
	binSum := sha256.Sum256(r.Binary)
	if hex.EncodeToString(binSum[:]) != f.BinarySum {
		p.Binary = r.Binary
		p.RestartPlugin = f.Service == "active"
		p.Notes = append(p.Notes, fmt.Sprintf("install the plugin (docker-tls, %d MB) as %s", len(r.Binary)>>20, PluginBinaryPath))
	}
	if !f.Units {
		p.Notes = append(p.Notes, "install "+pluginSocketUnit+" and "+pluginServiceUnit+", and order docker.service after the socket")
	}
	for _, want := range []File{
		{Path: socketUnitPath, Data: socketUnitText(), Mode: 0o644},
		{Path: serviceUnitPath, Data: serviceUnitText(), Mode: 0o644},
		{Path: orderDropInPath, Data: orderDropInText(), Mode: 0o644},
	} {
		// The units are ours alone: rewritten whole whenever they are not
		// in place (their contents are not read back).
		if !f.Units || p.Binary != nil {
			p.Files = append(p.Files, want)
		}
	}
	if !bytes.Equal(f.Config, r.Config) {
		p.Files = append(p.Files, File{Path: PolicyPath, Data: r.Config, Mode: 0o644})
		p.Notes = append(p.Notes, "write the policy to "+PolicyPath)
	}
	if !listsPlugin(dj) || !f.Enabled {
		p.DaemonJSON = withPlugin(dj).render()
		p.Notes = append(p.Notes, "add "+PluginName+" to authorization-plugins in "+DaemonJSONPath+" and reload dockerd (no restart) once the plugin answers")
	}
	return p, nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func probeNote(p string) string {
	if p == "" {
		return ""
	}
	return "; probe: " + p
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func authzPlugins(dj daemonJSON) []string {
	var list []string
	_ = json.Unmarshal(dj.keys["authorization-plugins"], &list)
	return list
}

func listsPlugin(dj daemonJSON) bool { return slices.Contains(authzPlugins(dj), PluginName) }

// withPlugin is dj with the plugin last among its authorization plugins
// (after the host's own, which keep their say).
func withPlugin(dj daemonJSON) daemonJSON {
	list := authzPlugins(dj)
	if slices.Contains(list, PluginName) {
		return dj.with(map[string]any{"authorization-plugins": list})
	}
	return dj.with(map[string]any{"authorization-plugins": append(list, PluginName)})
}

// withoutPlugin is dj without the plugin; the key goes when nothing else
// is listed.
func withoutPlugin(dj daemonJSON) daemonJSON {
	list := slices.DeleteFunc(authzPlugins(dj), func(s string) bool { return s == PluginName })
	if len(list) > 0 {
		return dj.with(map[string]any{"authorization-plugins": list})
	}
	return dj.without("authorization-plugins")
}

// unameNames are uname -m's names for an ELF machine Go builds for.
func unameNames(m elf.Machine) []string {
	switch m {
	case elf.EM_X86_64:
		return []string{"x86_64", "amd64"}
	case elf.EM_AARCH64:
		return []string{"aarch64", "arm64"}
	case elf.EM_ARM:
		return []string{"armv6l", "armv7l", "armv8l", "arm"}
	case elf.EM_386:
		return []string{"i386", "i486", "i586", "i686"}
	case elf.EM_PPC64:
		return []string{"ppc64le", "ppc64"}
	case elf.EM_S390:
		return []string{"s390x"}
	case elf.EM_RISCV:
		return []string{"riscv64"}
	}
	return nil
}

// BinaryArch is the machine a Linux executable is built for, by uname -m's
// name; an error when bin is no Linux executable.
func BinaryArch(bin []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return "", errors.New("not a Linux executable")
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", errors.New("not an executable")
	}
	if names := unameNames(f.Machine); len(names) > 0 {
		return names[0], nil
	}
	return f.Machine.String(), nil
}

// CheckBinaryArch refuses a plugin binary the host cannot run: not a
// Linux executable (a laptop on macOS), or built for another machine.
func CheckBinaryArch(bin []byte, unameM string) error {
	arch, err := BinaryArch(bin)
	if err != nil {
		return &ArchError{Host: unameM, Binary: err.Error()}
	}
	if arch != unameM && !slices.Contains(unameNames(machineOf(arch)), unameM) {
		return &ArchError{Host: unameM, Binary: "built for " + arch}
	}
	return nil
}

// machineOf is the ELF machine of one of unameNames' first names.
func machineOf(arch string) elf.Machine {
	for _, m := range []elf.Machine{elf.EM_X86_64, elf.EM_AARCH64, elf.EM_ARM, elf.EM_386, elf.EM_PPC64, elf.EM_S390, elf.EM_RISCV} {
		if names := unameNames(m); names[0] == arch {
			return m
		}
	}
	return elf.EM_NONE
}

// ArchError is a plugin binary the host cannot run.
type ArchError struct{ Host, Binary string }

func (e *ArchError) Error() string {
	return fmt.Sprintf("the host is %s, and the plugin binary is %s", e.Host, e.Binary)
}

// ApplyPolicy puts a planned policy in force: backups first (the
// pre-policy one only once), the binary (its checksum checked on the
// host), the units and the policy file, the plugin started and asked what
// it enforces, and only then dockerd told to use it, by a reload. A
// failure after the backups puts every file back and dockerd as it was.
func ApplyPolicy(ctx context.Context, s Shell, p *PolicyPlan) error {
	files, dirs := policyPaths(true)
	run, runDirs := policyPaths(false)
	script := "set -e\n(" + policyLists(files, dirs) + "ONCE=1; DEST=" + PolicyBackup + "\n" + snapshotScript + ")\n" +
		"(" + policyLists(append(run, DaemonJSONPath), runDirs) + "if [ -e " + policyPending + " ]; then ONCE=1; else ONCE=; fi; DEST=" + policyRunBackup + "\n" + snapshotScript + ")\n" +
		": >" + policyPending
	if _, err := s.Run(ctx, script, nil); err != nil {
		return fmt.Errorf("back up the host's configuration: %w", err)
	}
	crashpoint.Hit("engine-policy:backed-up")
	if err := applyPolicy(ctx, s, p); err != nil {
		return rollBackPolicy(ctx, s, p, err)
	}
	crashpoint.Hit("engine-policy:enabled")
	return finishPolicyRun(ctx, s)
}

// finishPolicyRun marks a policy change done: its run's backup and
// pending marker go.
func finishPolicyRun(ctx context.Context, s Shell) error {
	if _, err := s.Run(ctx, "rm -rf "+policyRunBackup+" "+policyPending, nil); err != nil {
		return fmt.Errorf("the policy is in force; clearing its run's backup failed: %w", err)
	}
	return nil
}

func applyPolicy(ctx context.Context, s Shell, p *PolicyPlan) error {
	if p.Binary != nil {
		if err := installBinary(ctx, s, p.Binary); err != nil {
			return err
		}
	}
	after := "systemctl daemon-reload && systemctl start " + pluginSocketUnit
	if p.RestartPlugin {
		after += " && systemctl try-restart " + pluginServiceUnit
	}
	if len(p.Files) > 0 {
		check := `cur=$(sha256sum ` + PolicyPath + ` 2>/dev/null | cut -c1-64)
if [ "$cur" != ` + shellQuote(p.Was) + ` ]; then echo "the engine's policy changed on the host since it was read: run the command again" >&2; exit 1; fi`
		if err := writeFilesChecked(ctx, s, check, after, p.Files...); err != nil {
			return err
		}
	} else if _, err := s.Run(ctx, after, nil); err != nil {
		return fmt.Errorf("start the plugin: %w", err)
	}
	crashpoint.Hit("engine-policy:files")
	// The plugin must answer, with this policy, before dockerd is told to
	// use it: dockerd 20.10 exits when a reload names a plugin that does
	// not answer.
	if err := pluginServes(ctx, s, p.Digest); err != nil {
		return err
	}
	if p.CRL != nil {
		if _, err := PushCRL(ctx, s, p.CRL); err != nil {
			return err
		}
	}
	if p.DaemonJSON == nil {
		return nil
	}
	if err := writeFiles(ctx, s, "systemctl reload "+UnitName, File{Path: DaemonJSONPath, Data: p.DaemonJSON, Mode: 0o644}); err != nil {
		return fmt.Errorf("turn the plugin on (systemctl reload docker): %w", err)
	}
	return waitConsulted(ctx, s, true)
}

// installBinary copies the plugin binary to the host through a temporary
// file, checks its checksum there, and renames it into place.
func installBinary(ctx context.Context, s Shell, bin []byte) error {
	sum := sha256.Sum256(bin)
	tmp := PluginBinaryPath + ".docker-tls-new"
	script := "set -e\numask 022\nmkdir -p " + path.Dir(PluginBinaryPath) + "\ncat >" + tmp + "\n" +
		"if ! echo '" + hex.EncodeToString(sum[:]) + "  " + tmp + "' | sha256sum -c --status; then rm -f " + tmp + "; echo 'the copy does not match its checksum' >&2; exit 1; fi\n" +
		"chmod 0755 " + tmp + "\nmv -f " + tmp + " " + PluginBinaryPath + "\n"
	if _, err := s.Run(ctx, script, bin); err != nil {
		return fmt.Errorf("copy the plugin to %s: %w", PluginBinaryPath, err)
	}
	return nil
}

// pluginServes waits for the plugin to answer with the policy of digest.
func pluginServes(ctx context.Context, s Shell, digest string) error {
	var last string
	err := poll(ctx, 20*time.Second, func() error {
		out, err := s.Run(ctx, PluginBinaryPath+" authz-plugin --status --wait 5s --socket "+PluginSocket, nil)
		if err != nil {
			last = firstLine(out, err)
			return fmt.Errorf("the plugin does not answer on %s: %s", PluginSocket, last)
		}
		var st struct {
			PolicyDigest string `json:"policyDigest"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			return fmt.Errorf("the plugin's status: %w", err)
		}
		if st.PolicyDigest != digest {
			return errors.New("the plugin does not enforce the new policy (it kept the last good one: see journalctl -u " + pluginServiceUnit + ")")
		}
		return nil
	})
	return err
}

// waitConsulted waits until dockerd runs and does (on) or does not consult
// the plugin, after a reload.
func waitConsulted(ctx context.Context, s Shell, on bool) error {
	return poll(ctx, 20*time.Second, func() error {
		f, err := InspectPolicy(ctx, s)
		if err != nil {
			return err
		}
		switch {
		case f.Docker != "active":
			return fmt.Errorf("dockerd is %s after the reload", orUnknown(f.Docker))
		case f.Enabled != on && on:
			return fmt.Errorf("dockerd does not consult the plugin after the reload (docker info: %s%s)", firstField(f.Info), probeNote(f.Probe))
		case f.Enabled != on:
			return fmt.Errorf("dockerd still consults the plugin after the reload (docker info: %s)", firstField(f.Info))
		}
		return nil
	})
}

func rollBackPolicy(ctx context.Context, s Shell, p *PolicyPlan, cause error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	ae := &ApplyError{Cause: cause}
	out, _ := s.Run(rctx, "journalctl -u "+pluginServiceUnit+" -u "+UnitName+" -n 15 --no-pager -o cat 2>/dev/null | tail -n 15", nil)
	ae.Journal = strings.TrimSpace(string(out))
	run, runDirs := policyPaths(false)
	// dockerd first goes back to what it consulted (a reload, with the
	// plugin still up to answer it), then the plugin's files go back.
	script := policyLists(append(run, DaemonJSONPath), runDirs) + "SRC=" + policyRunBackup + "\n" + restoreScript
	if p.DaemonJSON != nil {
		script += "systemctl reload " + UnitName + "\n"
	}
	if out, err := s.Run(rctx, script, nil); err != nil {
		ae.RestoreErr = fmt.Errorf("restore the files from %s: %s", policyRunBackup, firstLine(out, err))
		return ae
	}
	if p.DaemonJSON != nil {
		f, err := InspectPolicy(rctx, s)
		if err == nil && f.Docker == "active" && !listsPlugin(mustDaemonJSON(f.DaemonJSON)) {
			err = waitConsulted(rctx, s, false)
		}
		if err != nil {
			ae.RestoreErr = err
			return ae
		}
	}
	cleanup := "systemctl daemon-reload\n" +
		"if [ -e " + socketUnitPath + " ]; then systemctl try-restart " + pluginServiceUnit + "; else systemctl stop " + pluginSocketUnit + " " + pluginServiceUnit + " 2>/dev/null || true; systemctl reset-failed " + pluginServiceUnit + " 2>/dev/null || true; fi\n" +
		"rm -rf " + policyRunBackup + " " + policyPending + "\n"
	if p.First {
		cleanup += "rm -rf " + PolicyBackup + "\n"
	}
	if out, err := s.Run(rctx, cleanup, nil); err != nil {
		ae.RestoreErr = fmt.Errorf("stop the plugin: %s", firstLine(out, err))
		return ae
	}
	ae.Restored = true
	return ae
}

func mustDaemonJSON(b []byte) daemonJSON {
	dj, _ := parseDaemonJSON(b)
	return dj
}

// PolicyOff takes the policy away: dockerd stops consulting the plugin (a
// reload), the plugin stops, and its files are put back as they were
// before the first policy set. keepAudit keeps the audit trail (and the
// backup that knows whether it was there before); teardown passes false.
// off is false when the host had no policy to take away.
func PolicyOff(ctx context.Context, s Shell, keepAudit bool) (off bool, err error) {
	f, err := InspectPolicy(ctx, s)
	if err != nil {
		return false, err
	}
	if !f.HasBackup && !f.Units && !f.Enabled {
		return false, nil
	}
	dj, err := parseDaemonJSON(f.DaemonJSON)
	if err != nil {
		return false, err
	}
	if listsPlugin(dj) || f.Enabled {
		if err := writeFiles(ctx, s, "systemctl reload "+UnitName, File{Path: DaemonJSONPath, Data: withoutPlugin(dj).render(), Mode: 0o644}); err != nil {
			return false, fmt.Errorf("turn the plugin off (systemctl reload docker): %w", err)
		}
		if err := waitConsulted(ctx, s, false); err != nil {
			return false, err
		}
	}
	crashpoint.Hit("engine-policy:off-reloaded")
	files, dirs := policyPaths(!keepAudit)
	script := "systemctl stop " + pluginSocketUnit + " " + pluginServiceUnit + " 2>/dev/null || true\nsystemctl reset-failed " + pluginServiceUnit + " 2>/dev/null || true\n"
	if f.HasBackup {
		script += "(" + policyLists(files, dirs) + "SRC=" + PolicyBackup + "\n" + restoreScript + ")\n"
	} else {
		// An interrupted first policy set: what it added goes.
		script += "rm -f " + strings.Join(files, " ") + "\n"
	}
	script += "systemctl daemon-reload\nrm -rf " + policyRunBackup + " " + policyPending + "\n"
	if !keepAudit {
		script += "rm -rf " + PolicyBackup + "\n"
	}
	if out, err := s.Run(ctx, script, nil); err != nil {
		return false, fmt.Errorf("remove the plugin: %s", firstLine(out, err))
	}
	return true, nil
}

// ErrNoPolicy is a host without a policy: its dockerd checks no
// revocation list.
var ErrNoPolicy = errors.New("the engine has no policy, so its dockerd checks no revocation list")

// PushCRL hands a revocation list (PEM) to the host's plugin, which takes
// it only when one of the engine's CAs signed it and it is not older than
// the one held. changed is false when the host held it already.
func PushCRL(ctx context.Context, s Shell, crlPEM []byte) (changed bool, err error) {
	script := "if [ ! -x " + PluginBinaryPath + " ] || [ ! -e " + PolicyPath + " ]; then echo no-policy; exit 0; fi\n" +
		PluginBinaryPath + " authz-plugin --install-crl --config " + PolicyPath + " --crl " + CRLPath + "\n"
	out, err := s.Run(ctx, script, crlPEM)
	if err != nil {
		return false, fmt.Errorf("the engine did not take the revocation list: %s", firstLine(out, err))
	}
	if strings.TrimSpace(string(out)) == "no-policy" {
		return false, ErrNoPolicy
	}
	var res struct {
		Changed bool `json:"changed"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return false, fmt.Errorf("the engine's answer to the revocation list: %w", err)
	}
	return res.Changed, nil
}

// AuditQuery selects what engine audit reads of the host's audit trail.
type AuditQuery struct {
	Since  time.Time
	User   string
	Denied bool
	Follow bool
}

// ReadAudit copies the host's audit trail (JSON lines, oldest first) that
// q selects to out, filtered on the host by its own plugin binary; with
// Follow, until ctx ends.
func ReadAudit(ctx context.Context, s *Session, q AuditQuery, out io.Writer) error {
	args := []string{PluginBinaryPath, "authz-plugin", "--read-audit", "--audit", AuditPath}
	if !q.Since.IsZero() {
		args = append(args, "--since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.User != "" {
		args = append(args, "--user", q.User)
	}
	if q.Denied {
		args = append(args, "--denied")
	}
	if q.Follow {
		args = append(args, "--follow", "--until-stdin-closes")
	}
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	script := "if [ ! -x " + PluginBinaryPath + " ]; then\n" +
		"  if [ -e " + AuditPath + " ]; then echo 'the policy is off; the audit trail it kept is in " + AuditPath + "' >&2; else echo 'the engine has no policy, so it keeps no audit trail' >&2; fi\n" +
		"  exit 3\nfi\nexec " + strings.Join(args, " ") + "\n"
	return s.Stream(ctx, script, out)
}

const policyStatusScript = `if [ -x ` + PluginBinaryPath + ` ] && [ "$(systemctl is-active ` + pluginSocketUnit + ` 2>/dev/null)" = active ]; then
  ` + PluginBinaryPath + ` authz-plugin --status
fi
`

// PolicyStatus asks a host's plugin what it enforces, with one short
// script: nil when no policy is installed.
func PolicyStatus(ctx context.Context, s Shell) (*authz.Status, error) {
	out, err := s.Run(ctx, policyStatusScript, nil)
	if err != nil {
		return nil, fmt.Errorf("ask the plugin on %s: %w", s.Host(), err)
	}
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, nil
	}
	var st authz.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("the plugin on %s answered %q: %w", s.Host(), bytes.TrimSpace(out), err)
	}
	return &st, nil
}

// PolicyInForce is the policy dockerd enforces on the host, as the facts
// say: nil when dockerd consults no plugin of ours, and then every
// certificate of the engine's CA is an admin there.
func PolicyInForce(f *PolicyFacts) (*policy.Policy, error) {
	if !f.Enabled || f.Config == nil {
		return nil, nil
	}
	cfg, err := authz.ParseConfig(f.Config)
	if err != nil {
		return nil, &UnreadablePolicyError{Err: err}
	}
	return &cfg.Policy, nil
}
