//go:build !windows

package agent

import (
	"os/exec"
	"syscall"
)

// detach starts cmd in its own session, so the agent outlives the shell.
func detach(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} }
