package engine

import (
	"fmt"
	"regexp"
	"strings"
)

// UnitState is docker.service as systemd has it (systemctl show).
type UnitState struct {
	Load   string // loaded, masked, not-found, …
	Active string // active, inactive, activating, failed, …
	Sub    string // running, dead, auto-restart, failed, …
	Result string // success, exit-code, start-limit-hit, …
	// Error is dockerd's own last error line from the journal, read only
	// when the unit failed or is restarting in a loop.
	Error string
}

// DockerdDownError refuses a host whose dockerd cannot run as it is: it
// failed, restarts in a loop, or its unit is masked. Such a host is not
// changed at all: no rollback could bring it back to a state that works,
// and a restart docker-tls made would fail for the host's own reason.
type DockerdDownError struct {
	Unit UnitState
}

// Masked is true when the unit is masked (it cannot be started at all).
func (e *DockerdDownError) Masked() bool { return e.Unit.Load == "masked" }

func (e *DockerdDownError) Error() string {
	if e.Masked() {
		return UnitName + " is masked on the host, so dockerd cannot start; nothing was changed: unmask it (systemctl unmask docker.service) if it should run, then run this again"
	}
	state := "has failed"
	if e.Unit.Active == "activating" {
		state = "is restarting in a loop"
	}
	detail := e.Unit.Active + "/" + e.Unit.Sub
	if e.Unit.Result != "" && e.Unit.Result != "success" {
		detail += ", " + e.Unit.Result
	}
	why := ""
	if e.Unit.Error != "" {
		why = fmt.Sprintf(": %q", e.Unit.Error)
	}
	return fmt.Sprintf("dockerd on the host %s (%s %s)%s; nothing was changed: fix the host until dockerd starts (systemctl start docker; journalctl -u docker), then run this again",
		state, UnitName, detail, why)
}

// checkUnit refuses a docker.service that cannot run as it is. A unit
// that is merely stopped (inactive) is fine: the setup starts it.
func checkUnit(u UnitState) error {
	switch {
	case u.Load == "masked":
		return &DockerdDownError{Unit: u}
	case u.Active == "failed", u.Active == "activating" && u.Sub == "auto-restart":
		return &DockerdDownError{Unit: u}
	}
	return nil
}

// logrusMsg is the message of one of dockerd's logrus lines
// (time="…" level=error msg="…").
const logrusMsg = `\blevel=(\w+) msg="((?:[^"\\]|\\.)*)"`

// dockerdError picks, from dockerd's last journal lines (oldest first),
// the line that says why it stopped: what it printed on its way out
// ("failed to start daemon: …", "unable to configure the Docker daemon
// with file …"; not a logrus line), else its last fatal or error message,
// else its last line.
func dockerdError(journal string) string {
	var lines []string
	for _, l := range strings.Split(journal, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if !strings.HasPrefix(lines[i], "time=") && !strings.Contains(lines[i], " level=") {
			return lines[i]
		}
	}
	msg := regexp.MustCompile(logrusMsg)
	for _, level := range []string{"fatal", "error"} {
		for i := len(lines) - 1; i >= 0; i-- {
			if m := msg.FindStringSubmatch(lines[i]); m != nil && m[1] == level {
				return strings.ReplaceAll(m[2], `\"`, `"`)
			}
		}
	}
	if len(lines) > 0 {
		return lines[len(lines)-1]
	}
	return ""
}
