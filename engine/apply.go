package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/docker-tls/docker-tls/internal/crashpoint"
)

// The files a setup may change, and the directories it may create: the
// backup holds each as it was (or that it was absent), so a rollback or a
// teardown restores the host byte for byte.
func managedPaths(tlsDir string) (files, dirs []string) {
	p := TLSPathsIn(tlsDir)
	return []string{DropInPath, DaemonJSONPath, p.CA, p.Cert, p.Key},
		[]string{DropInDir, tlsDir, path.Dir(DaemonJSONPath)}
}

// snapshotScript copies the managed files into $DEST (files/ and a list of
// the absent ones) and renames it into place whole; with ONCE set, an
// existing $DEST is kept (the pre-setup backup is taken only once).
// $FILES and $DIRS are lists, one path a line (pathLists), read as data,
// never split into shell words.
const snapshotScript = `set -e
umask 077
mkdir -p ` + HostStateDir + `
if [ -n "$ONCE" ] && [ -d "$DEST" ]; then exit 0; fi
rm -rf "$DEST.tmp"; mkdir -p "$DEST.tmp/files"; : >"$DEST.tmp/absent"; : >"$DEST.tmp/absent-dirs"
while IFS= read -r f; do
  [ -n "$f" ] || continue
  if [ -e "$f" ]; then mkdir -p "$DEST.tmp/files$(dirname "$f")"; cp -a "$f" "$DEST.tmp/files$f"; else printf '%s\n' "$f" >>"$DEST.tmp/absent"; fi
done <<DOCKER_TLS_FILES
$FILES
DOCKER_TLS_FILES
while IFS= read -r d; do
  [ -n "$d" ] || continue
  [ -d "$d" ] || printf '%s\n' "$d" >>"$DEST.tmp/absent-dirs"
done <<DOCKER_TLS_DIRS
$DIRS
DOCKER_TLS_DIRS
sync "$DEST.tmp" 2>/dev/null || sync
rm -rf "$DEST"; mv "$DEST.tmp" "$DEST"
`

// restoreScript puts back what $SRC holds: each file through a temporary
// copy and a rename, absent ones removed, directories that were absent
// removed when empty.
const restoreScript = `set -e
[ -d "$SRC" ] || { echo "no backup at $SRC" >&2; exit 3; }
while IFS= read -r f; do
  [ -n "$f" ] || continue
  if grep -qxF -e "$f" "$SRC/absent"; then rm -f "$f"
  elif [ -e "$SRC/files$f" ]; then mkdir -p "$(dirname "$f")"; cp -a "$SRC/files$f" "$f.docker-tls-restore"; mv -f "$f.docker-tls-restore" "$f"
  fi
done <<DOCKER_TLS_FILES
$FILES
DOCKER_TLS_FILES
while IFS= read -r d; do
  [ -n "$d" ] || continue
  if grep -qxF -e "$d" "$SRC/absent-dirs"; then rmdir "$d" 2>/dev/null || true; fi
done <<DOCKER_TLS_DIRS
$DIRS
DOCKER_TLS_DIRS
`

// pathLists sets FILES and DIRS for snapshotScript and restoreScript:
// the managed paths, one a line, each list quoted as one shell word.
func pathLists(tlsDir string) string {
	files, dirs := managedPaths(tlsDir)
	return "FILES=" + shellQuote(strings.Join(files, "\n")) + "; DIRS=" + shellQuote(strings.Join(dirs, "\n"))
}

const (
	// OriginalBackup holds the host's files as they were before the
	// first setup; teardown restores them.
	OriginalBackup = HostStateDir + "/backup"
	runBackup      = HostStateDir + "/previous"
	pendingFile    = HostStateDir + "/pending"
	hostStateFile  = HostStateDir + "/state.json"
)

// HostState is what the host keeps of its setup (no secret).
type HostState struct {
	SetupBy       string    `json:"setupBy"`
	Mode          Mode      `json:"mode"`
	Port          int       `json:"port"`
	TLSDir        string    `json:"tlsDir"`
	CAFingerprint string    `json:"caFingerprint"`
	Serial        string    `json:"serial"`
	NotAfter      time.Time `json:"notAfter"`
	Updated       time.Time `json:"updated"`
}

// Change is a plan with the server files to install.
type Change struct {
	Plan   *Plan
	TLSDir string
	// ServerFiles are ca.pem, server-cert.pem and server-key.pem, when the
	// plan issues a certificate.
	ServerFiles []File
	State       HostState
	// Verify checks, from the laptop, that dockerd serves what it should;
	// it is retried until it passes or ReadyTimeout passes.
	Verify       func(context.Context) error
	ReadyTimeout time.Duration
	// FirstSetup says the host had no docker-tls state before this run: a
	// rollback then removes that state too, leaving the host as it was.
	FirstSetup bool
}

// ApplyError is a setup that failed and was rolled back.
type ApplyError struct {
	Cause error
	// Restored says the previous files are back and dockerd runs again.
	Restored bool
	// RestoreErr is why putting things back failed, if it did.
	RestoreErr error
	// Journal is the last lines of the docker unit's journal.
	Journal string
}

func (e *ApplyError) Error() string {
	var b strings.Builder
	b.WriteString(e.Cause.Error())
	if e.Restored {
		b.WriteString("; every file changed was put back and dockerd serves as before")
	} else if e.RestoreErr != nil {
		fmt.Fprintf(&b, "; putting the previous files back failed too (%v): the backup is in %s on the host", e.RestoreErr, runBackup)
	}
	if e.Journal != "" {
		b.WriteString("\nlast lines of dockerd's journal:\n" + e.Journal)
	}
	return b.String()
}

func (e *ApplyError) Unwrap() error { return e.Cause }

// Apply carries out a change on the host: backups first (the pre-setup one
// only once), then the files, live-restore by a reload where planned, the
// restart, and the check from the laptop. A failure after the backups puts
// every file back, restarts dockerd and checks it runs.
func Apply(ctx context.Context, s Shell, c Change) error {
	env := pathLists(c.TLSDir) + "; "
	// Both backups in one round trip, each in a subshell of its own: the
	// pre-setup one only once; the run's one, which a rollback restores,
	// kept after an interrupted run (pending), since it still holds the
	// files from before that run, not the half-changed ones.
	script := env + "set -e\n(ONCE=1; DEST=" + OriginalBackup + "\n" + snapshotScript + ")\n" +
		"(if [ -e " + pendingFile + " ]; then ONCE=1; else ONCE=; fi; DEST=" + runBackup + "\n" + snapshotScript + ")\n" +
		": >" + pendingFile
	if _, err := s.Run(ctx, script, nil); err != nil {
		return fmt.Errorf("back up the host's configuration: %w", err)
	}
	crashpoint.Hit("engine-apply:run-backup")
	if err := apply(ctx, s, c); err != nil {
		return rollBack(ctx, s, c, err)
	}
	crashpoint.Hit("engine-apply:verified")
	state, _ := json.MarshalIndent(c.State, "", "  ")
	return writeFiles(ctx, s, "rm -f "+pendingFile+"; rm -rf "+runBackup, File{Path: hostStateFile, Data: append(state, '\n'), Mode: 0o600})
}

func apply(ctx context.Context, s Shell, c Change) error {
	p := c.Plan
	if len(c.ServerFiles) > 0 {
		if err := writeFiles(ctx, s, "", c.ServerFiles...); err != nil {
			return err
		}
	}
	crashpoint.Hit("engine-apply:server-files")
	if p.LiveRestoreFirst != nil {
		if err := writeFiles(ctx, s, "systemctl reload docker", File{Path: DaemonJSONPath, Data: p.LiveRestoreFirst, Mode: 0o644}); err != nil {
			return fmt.Errorf("switch live-restore on (systemctl reload docker): %w", err)
		}
		if err := poll(ctx, 15*time.Second, func() error {
			out, err := s.Run(ctx, "docker info --format '{{.LiveRestoreEnabled}}'", nil)
			if err != nil || strings.TrimSpace(string(out)) != "true" {
				return errors.New("dockerd did not switch live-restore on after a reload; nothing was restarted")
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if len(p.Config) > 0 {
		if err := writeFiles(ctx, s, "", p.Config...); err != nil {
			return err
		}
	}
	crashpoint.Hit("engine-apply:config")
	if !p.Restart {
		return nil
	}
	if out, err := s.Run(ctx, "systemctl daemon-reload && systemctl restart docker", nil); err != nil {
		return fmt.Errorf("dockerd did not restart: %s", firstLine(out, err))
	}
	crashpoint.Hit("engine-apply:restarted")
	if c.Verify == nil {
		return nil
	}
	limit := c.ReadyTimeout
	if limit == 0 {
		limit = 30 * time.Second
	}
	return poll(ctx, limit, func() error { return c.Verify(ctx) })
}

func rollBack(ctx context.Context, s Shell, c Change, cause error) error {
	// The rollback must run even when the caller's context is what ended.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	ae := &ApplyError{Cause: cause}
	out, _ := s.Run(rctx, "journalctl -u docker -n 15 --no-pager -o cat 2>/dev/null | tail -n 15", nil)
	ae.Journal = strings.TrimSpace(string(out))
	if err := restore(rctx, s, runBackup, c.TLSDir); err != nil {
		ae.RestoreErr = err
		return ae
	}
	cleanup := "rm -f " + pendingFile + "; rm -rf " + runBackup
	if c.FirstSetup {
		cleanup = "rm -rf " + HostStateDir
	}
	if _, err := s.Run(rctx, cleanup, nil); err != nil {
		ae.RestoreErr = err
		return ae
	}
	ae.Restored = true
	return ae
}

// restore puts the managed files back from the backup in src and restarts
// dockerd, without stopping running containers: when the restored
// daemon.json has live-restore off, the restart runs with it on, and the
// restored file is then loaded by a reload (dockerd applies live-restore on
// reload, and only acts on it when it stops or starts).
func restore(ctx context.Context, s Shell, src, tlsDir string) error {
	env := pathLists(tlsDir) + "; SRC=" + shellQuote(src) + "\n"
	if out, err := s.Run(ctx, env+restoreScript, nil); err != nil {
		return fmt.Errorf("restore the files from %s: %s", src, firstLine(out, err))
	}
	// What the restored configuration says about live-restore, and how
	// many containers run now.
	out, err := s.Run(ctx, "systemctl daemon-reload; cat "+DaemonJSONPath+" 2>/dev/null || true; echo; systemctl show docker -p ExecStart --value | grep -c -e '--live-restore' || true; docker ps -q 2>/dev/null | wc -l", nil)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) < 2 {
		return fmt.Errorf("unexpected answer from the host: %q", out)
	}
	running, flag := strings.TrimSpace(lines[len(lines)-1]), strings.TrimSpace(lines[len(lines)-2])
	dj, _ := parseDaemonJSON([]byte(strings.Join(lines[:len(lines)-2], "\n")))
	_, ok := dj.keys["live-restore"]
	bridge := running != "0" && !ok && flag == "0"
	if bridge {
		if err := writeFiles(ctx, s, "", File{Path: DaemonJSONPath, Data: dj.with(map[string]any{"live-restore": true}).render(), Mode: 0o644}); err != nil {
			return err
		}
	}
	if out, err := s.Run(ctx, "systemctl daemon-reload && systemctl restart docker && systemctl is-active docker", nil); err != nil {
		return fmt.Errorf("restart dockerd with the restored files: %s", firstLine(out, err))
	}
	if bridge {
		one := "FILES=" + shellQuote(DaemonJSONPath) + "; DIRS=; SRC=" + shellQuote(src) + "\n"
		if out, err := s.Run(ctx, one+restoreScript+"\nsystemctl reload docker", nil); err != nil {
			return fmt.Errorf("restore %s: %s", DaemonJSONPath, firstLine(out, err))
		}
	}
	return nil
}

// writeFiles writes whole files on the host in one round trip: each to a
// temporary file beside it, then all renamed into place, then the shell
// commands in after. The contents (a server key among them) travel inside
// a script on stdin, never in argv.
func writeFiles(ctx context.Context, s Shell, after string, files ...File) error {
	return writeFilesChecked(ctx, s, "", after, files...)
}

// writeFilesChecked is writeFiles with a check first, in the same script:
// a check that fails (exit non-zero) leaves every file as it was.
func writeFilesChecked(ctx context.Context, s Shell, check, after string, files ...File) error {
	var b strings.Builder
	b.WriteString("set -e\numask 077\n" + check + "\n")
	for _, f := range files {
		tmp := f.Path + ".docker-tls-new"
		fmt.Fprintf(&b, "mkdir -p %s\nbase64 -d >%s <<'DOCKER_TLS_EOF'\n", shellQuote(path.Dir(f.Path)), shellQuote(tmp))
		enc := base64.StdEncoding.EncodeToString(f.Data)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\n")
			enc = enc[76:]
		}
		fmt.Fprintf(&b, "%s\nDOCKER_TLS_EOF\nchmod %o %s\n", enc, f.Mode, shellQuote(tmp))
	}
	for _, f := range files {
		fmt.Fprintf(&b, "mv -f %s %s\n", shellQuote(f.Path+".docker-tls-new"), shellQuote(f.Path))
	}
	b.WriteString(after + "\n")
	if _, err := s.Run(ctx, "sh -s", []byte(b.String())); err != nil {
		names := make([]string, len(files))
		for i, f := range files {
			names[i] = f.Path
		}
		return fmt.Errorf("write %s: %w", strings.Join(names, ", "), err)
	}
	return nil
}

// poll runs check until it passes, at most limit, and returns its last
// error.
func poll(ctx context.Context, limit time.Duration, check func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Teardown takes the engine's policy away (PolicyOff, audit trail
// included), restores the host's files from before the first setup, restarts
// dockerd (keeping running containers), checks the TLS port is closed, and
// removes docker-tls's state on the host. restored is false when there was
// nothing to restore (an earlier teardown finished on the host).
func Teardown(ctx context.Context, s Shell, tlsDir string, port int) (restored bool, err error) {
	// The policy first: dockerd stops consulting the plugin while it still
	// answers, and the drop-in directory is empty of it before the
	// restore removes that directory.
	policyOff, err := PolicyOff(ctx, s, false)
	if err != nil {
		return false, fmt.Errorf("take the engine's policy away: %w", err)
	}
	out, err := s.Run(ctx, "[ -d "+OriginalBackup+" ] && echo yes || echo no", nil)
	if err != nil {
		return false, err
	}
	if strings.TrimSpace(string(out)) != "yes" {
		_, err := s.Run(ctx, "rm -rf "+HostStateDir, nil)
		return policyOff, err
	}
	if err := restore(ctx, s, OriginalBackup, tlsDir); err != nil {
		return false, err
	}
	if err := poll(ctx, 10*time.Second, func() error {
		out, err := s.Run(ctx, fmt.Sprintf("ss -Hltn 'sport = :%d'", port), nil)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(out)) != "" {
			return fmt.Errorf("port %d is still open after the restore: %s", port, firstField(string(out)))
		}
		return nil
	}); err != nil {
		return true, err
	}
	_, err = s.Run(ctx, "rm -rf "+HostStateDir, nil)
	return true, err
}
