// Package dbhelper owns the split of docker-tls into two executables: the
// plugin, docker-tls, and its database helper, docker-tls-db.
//
// The docker CLI execs a plugin twice for every `docker tls …` (once for its
// metadata, once for the command), and Go runs every linked package's
// initialisation and loads its code on each exec. The SQLite and PostgreSQL
// drivers alone cost 3–5 ms an exec, a sixth of the plugin's start, on
// every command, though only the commands that open a CA's database use
// them. Go cannot load a package lazily, so the drivers live in a second
// executable: docker-tls-db is the same program with the drivers linked.
//
// A command runs in the plugin only if it is marked lean: the commands
// people run often, and those that run where only the plugin is installed
// (the authorization plugin on an engine's host). Every other command, each
// that opens a database or may (issuing records into the CA's inventory)
// and the occasional rest, is handed to the helper before it reads or
// writes anything, by execve(2): the process, its arguments, environment,
// standard streams and pid stay the same, and the docker CLI sees no
// difference. On Windows, which has no execve, the helper runs as a child
// and its exit code is the plugin's. A command added without a mark runs
// in the helper: slower, never broken.
//
// The helper is installed beside the plugin, in a directory the docker CLI
// does not list as a plugin: CLI-PLUGINS/docker-tls.d/docker-tls-db.
package dbhelper

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/remoteca"
)

const (
	// Dir is the directory beside the plugin that holds the helper. The
	// docker CLI looks only at files named docker-*, so it is never taken
	// for a plugin.
	Dir = "docker-tls.d"
	// Name is the helper's file name.
	Name = "docker-tls-db"

	annotation = "docker-tls.runs-in"
	lean       = "plugin"
)

// Linked says whether this executable has the database drivers: it is the
// helper, or a test binary that imported them.
func Linked() bool { return remoteca.DriversLinked() }

// MarkLean marks commands that never open a CA's database, so that they
// run in the plugin without the helper's start-up cost.
func MarkLean(cmds ...*cobra.Command) {
	for _, c := range cmds {
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[annotation] = lean
	}
}

// IsLean says whether cmd was marked by MarkLean.
func IsLean(cmd *cobra.Command) bool { return cmd.Annotations[annotation] == lean }

// Path is where the helper of the plugin executable exe is.
func Path(exe string) string { return filepath.Join(filepath.Dir(exe), Dir, Name+exeSuffix(exe)) }

// exeSuffix is exe's ".exe", on Windows, that the helper's name takes too.
func exeSuffix(exe string) string {
	if ext := filepath.Ext(exe); strings.EqualFold(ext, ".exe") {
		return ext
	}
	return ""
}

// PluginPath is the plugin executable that goes with exe: exe's plugin if
// exe is a helper installed as Path says, else exe itself. What is copied to
// an engine's host as its authorization plugin is the lean executable.
func PluginPath(exe string) string {
	dir, ext := filepath.Dir(exe), exeSuffix(exe)
	if filepath.Base(exe) != Name+ext || filepath.Base(dir) != Dir {
		return exe
	}
	plugin := filepath.Join(filepath.Dir(dir), "docker-tls"+ext)
	if fi, err := os.Stat(plugin); err == nil && fi.Mode().IsRegular() {
		return plugin
	}
	return exe
}

// MissingError says the helper a command needs is not installed.
type MissingError struct {
	Command string // the command path, "docker tls ca token"
	Path    string
	Err     error
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s opens a CA's database, which docker-tls does through its helper %s: %v", e.Command, e.Path, e.Err)
}

func (e *MissingError) Unwrap() error { return e.Err }

// HandOff runs cmd in the helper if it needs the database drivers and this
// executable has none: it replaces this process with the helper, given the
// same arguments and environment, and returns only if that failed. It is
// called from the root command's PersistentPreRunE, after cobra has parsed
// the command line and before anything is read or written.
func HandOff(cmd *cobra.Command) error {
	if IsLean(cmd) || Linked() {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this docker-tls executable, to run %s in its helper: %w", cmd.CommandPath(), err)
	}
	helper := Path(exe)
	fi, err := os.Stat(helper)
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a file")
	}
	if errors.Is(err, fs.ErrNotExist) {
		err = fs.ErrNotExist
	}
	if err == nil {
		// Returns only on failure.
		err = run(helper)
	}
	return &MissingError{Command: cmd.CommandPath(), Path: helper, Err: err}
}
