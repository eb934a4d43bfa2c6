//go:build windows

package dbhelper

import (
	"errors"
	"os"
	"os/exec"
)

// run runs the helper as a child with this process's arguments,
// environment and standard streams, and exits with its code: Windows has
// no execve. It returns only if the helper could not be started.
func run(helper string) error {
	cmd := exec.Command(helper, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &exit):
		os.Exit(exit.ExitCode())
	}
	return err
}
