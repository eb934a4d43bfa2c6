//go:build windows

package agent

import "os/exec"

// detach: agent mode is not available on Windows (agentSupported says so).
func detach(cmd *exec.Cmd) {}
