package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Paths on the host. The drop-in is ours alone; the state directory holds
// the backup of every file as it was before the first setup, and what the
// last run did.
const (
	UnitName       = "docker.service"
	DropInDir      = "/etc/systemd/system/docker.service.d"
	DropInPath     = DropInDir + "/docker-tls.conf"
	DaemonJSONPath = "/etc/docker/daemon.json"
	DefaultTLSDir  = "/etc/docker/tls"
	HostStateDir   = "/var/lib/docker-tls"
)

// Facts are what Inspect read on a host. Nothing in them is secret: the
// server key is never read back.
type Facts struct {
	OS         string
	Systemd    bool
	Dockerd    string // path, empty when not installed
	DockerdVer string
	// Unit is docker.service's state as systemd has it.
	Unit          UnitState
	UnitCat       string // systemctl cat docker.service
	DaemonJSON    []byte // nil when absent
	DropIn        []byte // our drop-in, nil when absent
	Hostname      string
	FQDN          string
	Addrs         []net.IP
	Swarm         string // inactive, active, pending, …
	LiveRestore   bool
	Running       int
	ServerVersion string
	// PortUsers is what listens on the TLS port now ("" when free).
	PortUsers string
	// ServerCert and CA are the PEM files in the TLS directory, if any.
	ServerCert, CAPEM []byte
	// HostState is /var/lib/docker-tls/state.json, nil when absent.
	HostState []byte
	// HasBackup says the pre-setup backup exists.
	HasBackup bool
	// Pending says a setup changed files and did not finish (killed).
	Pending bool
	// InfoRefused is an authorization plugin's refusal of the host's own
	// docker info: what runs (and whether live-restore is on) is unknown.
	InfoRefused string
}

// inspectScript prints one key=value line per fact; file contents and
// multi-line output base64-encoded. It only reads.
const inspectScript = `
b64() { if [ -e "$1" ]; then base64 -w0 <"$1"; echo; else echo absent; fi; }
. /etc/os-release 2>/dev/null; echo "os=${PRETTY_NAME:-unknown}"
if [ -d /run/systemd/system ]; then echo systemd=1; else echo systemd=0; fi
echo "dockerd=$(command -v dockerd || true)"
echo "dockerd_version=$(dockerd --version 2>/dev/null | head -n1)"
systemctl show ` + UnitName + ` -p LoadState -p ActiveState -p SubState -p Result 2>/dev/null | sed 's/^/unit_/'
# dockerd's own output of its last run (not systemd's lines about it), when
# it cannot run.
case "$(systemctl show ` + UnitName + ` -p ActiveState -p SubState --value 2>/dev/null | tr '\n' /)" in
failed/*|activating/auto-restart/)
  id=$(systemctl show ` + UnitName + ` -p InvocationID --value 2>/dev/null)
  j=
  [ -z "$id" ] || j=$(journalctl _SYSTEMD_UNIT=` + UnitName + ` _SYSTEMD_INVOCATION_ID="$id" -o cat -n 40 --no-pager 2>/dev/null)
  [ -n "$j" ] || j=$(journalctl _SYSTEMD_UNIT=` + UnitName + ` -o cat -n 40 --no-pager 2>/dev/null)
  echo "unit_journal=$(printf '%s\n' "$j" | base64 -w0)" ;;
esac
echo "unit_cat=$(systemctl cat docker.service 2>/dev/null | base64 -w0)"
echo "daemon_json=$(b64 /etc/docker/daemon.json)"
echo "dropin=$(b64 ` + DropInPath + `)"
echo "hostname=$(hostname)"
echo "fqdn=$(hostname -f 2>/dev/null || true)"
echo "addrs=$(ip -o addr show scope global 2>/dev/null | awk '$2 !~ /^(docker|br-|veth|virbr|cni|flannel|cali)/ {print $4}' | tr '\n' ' ')"
docker info --format 'swarm={{.Swarm.LocalNodeState}}
live_restore={{.LiveRestoreEnabled}}
running={{.ContainersRunning}}
server_version={{.ServerVersion}}' 2>/dev/null || true
# docker info --format hides a refused call behind empty values (20.10):
# docker version says it.
v=$(docker version --format '{{.Server.Version}}' 2>&1 || true)
case "$v" in *"authorization denied by plugin"*) echo "info_refused=$(printf '%s\n' "$v" | grep -m 1 'authorization denied' | base64 -w0)" ;; esac
echo "port_users=$(ss -Hltnp "sport = :$PORT" 2>/dev/null | base64 -w0)"
echo "server_cert=$(b64 "$TLSDIR/server-cert.pem")"
echo "ca=$(b64 "$TLSDIR/ca.pem")"
echo "host_state=$(b64 ` + HostStateDir + `/state.json)"
if [ -e ` + HostStateDir + `/pending ]; then echo pending=1; else echo pending=0; fi
if [ -d ` + HostStateDir + `/backup ]; then echo has_backup=1; else echo has_backup=0; fi
`

// Inspect reads a host's facts for a TLS port and directory, changing
// nothing.
func Inspect(ctx context.Context, s Shell, port int, tlsDir string) (*Facts, error) {
	script := fmt.Sprintf("PORT=%d; TLSDIR=%s\n%s", port, shellQuote(tlsDir), inspectScript)
	out, err := s.Run(ctx, script, nil)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", s.Host(), err)
	}
	return parseFacts(out)
}

// factFile decodes a file's contents as inspectScript prints them: nil
// for "absent", else base64.
func factFile(k, v string) ([]byte, error) {
	if v == "absent" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("host answered an unreadable %s: %w", k, err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// factSetters read each key inspectScript prints into Facts (a function,
// not a package variable: nothing is built at start-up).
func factSetters() map[string]func(f *Facts, k, v string) error {
	return map[string]func(f *Facts, k, v string) error{
		"os":               func(f *Facts, _, v string) error { f.OS = v; return nil },
		"systemd":          func(f *Facts, _, v string) error { f.Systemd = v == "1"; return nil },
		"dockerd":          func(f *Facts, _, v string) error { f.Dockerd = v; return nil },
		"dockerd_version":  func(f *Facts, _, v string) error { f.DockerdVer = v; return nil },
		"unit_LoadState":   func(f *Facts, _, v string) error { f.Unit.Load = v; return nil },
		"unit_ActiveState": func(f *Facts, _, v string) error { f.Unit.Active = v; return nil },
		"unit_SubState":    func(f *Facts, _, v string) error { f.Unit.Sub = v; return nil },
		"unit_Result":      func(f *Facts, _, v string) error { f.Unit.Result = v; return nil },
		"unit_journal": func(f *Facts, _, v string) error {
			b, err := base64.StdEncoding.DecodeString(v)
			f.Unit.Error = dockerdError(string(b))
			return err
		},
		"unit_cat": func(f *Facts, _, v string) error {
			b, err := base64.StdEncoding.DecodeString(v)
			f.UnitCat = string(b)
			return err
		},
		"daemon_json": func(f *Facts, k, v string) (err error) { f.DaemonJSON, err = factFile(k, v); return err },
		"dropin":      func(f *Facts, k, v string) (err error) { f.DropIn, err = factFile(k, v); return err },
		"hostname":    func(f *Facts, _, v string) error { f.Hostname = v; return nil },
		"fqdn":        func(f *Facts, _, v string) error { f.FQDN = v; return nil },
		"addrs": func(f *Facts, _, v string) error {
			for _, a := range strings.Fields(v) {
				if ip, _, err := net.ParseCIDR(a); err == nil {
					f.Addrs = append(f.Addrs, ip)
				}
			}
			return nil
		},
		"swarm":          func(f *Facts, _, v string) error { f.Swarm = v; return nil },
		"live_restore":   func(f *Facts, _, v string) error { f.LiveRestore = v == "true"; return nil },
		"running":        func(f *Facts, _, v string) error { f.Running, _ = strconv.Atoi(strings.TrimSpace(v)); return nil },
		"server_version": func(f *Facts, _, v string) error { f.ServerVersion = v; return nil },
		"port_users": func(f *Facts, _, v string) error {
			b, err := base64.StdEncoding.DecodeString(v)
			f.PortUsers = strings.TrimSpace(string(b))
			return err
		},
		"server_cert": func(f *Facts, k, v string) (err error) { f.ServerCert, err = factFile(k, v); return err },
		"ca":          func(f *Facts, k, v string) (err error) { f.CAPEM, err = factFile(k, v); return err },
		"host_state":  func(f *Facts, k, v string) (err error) { f.HostState, err = factFile(k, v); return err },
		"pending":     func(f *Facts, _, v string) error { f.Pending = v == "1"; return nil },
		"has_backup":  func(f *Facts, _, v string) error { f.HasBackup = v == "1"; return nil },
		"info_refused": func(f *Facts, _, v string) error {
			b, err := base64.StdEncoding.DecodeString(v)
			f.InfoRefused = strings.TrimSpace(string(b))
			return err
		},
	}
}

func parseFacts(out []byte) (*Facts, error) {
	f := &Facts{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 8<<20)
	seen := map[string]bool{}
	setters := factSetters()
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		seen[k] = true
		if set, ok := setters[k]; ok {
			if err := set(f, k, v); err != nil {
				return nil, err
			}
		}
	}
	if !seen["has_backup"] {
		return nil, fmt.Errorf("the host's answer was cut short (%d bytes)", len(out))
	}
	return f, nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
