package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/docker-tls/docker-tls/internal/fsutil"
)

// StartTimeout is how long Start waits for a new agent to answer.
const StartTimeout = 15 * time.Second

// Start runs exe with args as a background agent serving dir: in a new
// session, its output appended to dir/agent.log, with env as its whole
// environment (the caller leaves out what the long-lived child must not
// hold). It returns once the agent answers on its socket, with its pid
// and the log's path; an agent that exits or stays silent is an error
// that names the log.
func Start(dir, exe string, args, env []string) (pid int, logPath string, err error) {
	if err := fsutil.MkdirPrivate(dir); err != nil {
		return 0, "", err
	}
	logPath = filepath.Join(dir, "agent.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, fsutil.PrivateFile)
	if err != nil {
		return 0, "", err
	}
	defer logFile.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	detach(cmd)
	if err := cmd.Start(); err != nil {
		return 0, "", fmt.Errorf("start the agent: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(StartTimeout)
	for time.Now().Before(deadline) {
		if Running(dir) {
			return cmd.Process.Pid, logPath, nil
		}
		select {
		case err := <-done:
			return 0, "", fmt.Errorf("the agent exited at start (%v); see %s", err, logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return 0, "", fmt.Errorf("the agent did not answer within %s; see %s", StartTimeout, logPath)
}
