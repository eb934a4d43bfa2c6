//go:build unix

package dbhelper

import (
	"os"
	"syscall"
)

// run replaces this process with the helper: same pid, arguments,
// environment and open standard streams. It returns only on failure.
func run(helper string) error {
	return syscall.Exec(helper, os.Args, os.Environ())
}
