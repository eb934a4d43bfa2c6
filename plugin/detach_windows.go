//go:build windows

package plugin

import "os/exec"

// detach: agent mode is not available on Windows (agentSupported says so).
func detach(cmd *exec.Cmd) {}
