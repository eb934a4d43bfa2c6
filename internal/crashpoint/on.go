//go:build crashtest && unix

package crashpoint

import (
	"os"
	"syscall"
)

// Hit records step in $DOCKER_TLS_TEST_CRASH_LOG and kills the process with
// SIGKILL, as a power cut or `kill -9` would, when step is
// $DOCKER_TLS_TEST_CRASH_AT.
func Hit(step string) {
	if log := os.Getenv("DOCKER_TLS_TEST_CRASH_LOG"); log != "" {
		if f, err := os.OpenFile(log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			_, _ = f.WriteString(step + "\n")
			_ = f.Close()
		}
	}
	if step == os.Getenv("DOCKER_TLS_TEST_CRASH_AT") {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
