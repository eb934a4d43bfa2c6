package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/keystore"
)

type agentInstallOptions struct {
	idleLock       time.Duration
	keyringTimeout time.Duration
	force          bool
}

func newAgentInstallCommand(a *app) *cobra.Command {
	var opts agentInstallOptions
	cmd := &cobra.Command{
		Use:   "install [--idle-lock 8h] [--force]",
		Short: "Start the agent at login (systemd user unit on Linux, launchd agent on macOS)",
		Example: `  docker tls agent install
  systemctl --user daemon-reload && systemctl --user enable --now docker-tls-agent
  docker tls agent install --idle-lock 8h --force   # replace the unit with new settings`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAgentInstall(a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.DurationVar(&opts.idleLock, "idle-lock", 0, "The agent drops a key unused this long (e.g. 8h)")
	f.DurationVar(&opts.keyringTimeout, "keyring-timeout", keystore.DefaultTimeout, "The agent gives up on the OS keyring after this long")
	f.BoolVar(&opts.force, "force", false, "Replace an existing unit or launchd agent that differs")
	return cmd
}

func runAgentInstall(a *app, opts agentInstallOptions) error {
	if err := checkAgentSpans(opts.idleLock, opts.keyringTimeout); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return err
	}
	args := []string{"agent", "--foreground"}
	if opts.idleLock > 0 {
		args = append(args, "--idle-lock", opts.idleLock.String())
	}
	if opts.keyringTimeout != keystore.DefaultTimeout {
		args = append(args, "--keyring-timeout", opts.keyringTimeout.String())
	}
	svc, err := agent.ServiceFor(runtime.GOOS, home, exe, a.configDir(), args)
	if err != nil {
		return err
	}
	out := a.cli.Out()
	if old, err := os.ReadFile(svc.Path); err == nil {
		if string(old) == svc.Content {
			fmt.Fprintf(out, "%s is already installed and unchanged\nEnable it with: %s\n", svc.Path, svc.Enable)
			return nil
		}
		if !opts.force {
			return fmt.Errorf("%s exists with other settings: --force replaces it", svc.Path)
		}
	}
	if err := os.MkdirAll(filepath.Dir(svc.Path), 0o755); err != nil {
		return err
	}
	if err := fsutil.WriteFile(svc.Path, []byte(svc.Content), fsutil.PublicFile, opts.force); err != nil {
		return err
	}
	fmt.Fprintf(out, "Wrote %s\nEnable it with: %s\n", svc.Path, svc.Enable)
	return nil
}
