package plugin

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

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
	svc, err := agentServiceFor(runtime.GOOS, home, exe, a.configDir(), args)
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

// agentService is what agent install writes: where, the file, and the
// command that enables it.
type agentService struct {
	Path, Content, Enable string
}

// agentServiceFor renders the login service of goos that runs exe with
// args for configDir. Paths are quoted for the format at hand (systemd's
// specifiers and quoting, XML), so a home directory with spaces, % or &
// still works.
func agentServiceFor(goos, home, exe, configDir string, args []string) (agentService, error) {
	switch goos {
	case "linux":
		cmdline := []string{systemdQuote(exe, false)}
		for _, arg := range args {
			cmdline = append(cmdline, systemdQuote(arg, true))
		}
		return agentService{
			Path: filepath.Join(home, ".config", "systemd", "user", "docker-tls-agent.service"),
			Content: "[Unit]\nDescription=docker-tls agent: TLS keys for Docker contexts, in memory only\n\n[Service]\n" +
				"Environment=" + systemdQuote("DOCKER_CONFIG="+configDir, false) + "\n" +
				"ExecStart=" + strings.Join(cmdline, " ") + "\nRestart=on-failure\n\n[Install]\nWantedBy=default.target\n",
			Enable: "systemctl --user daemon-reload && systemctl --user enable --now docker-tls-agent",
		}, nil
	case "darwin":
		path := filepath.Join(home, "Library", "LaunchAgents", "com.docker-tls.agent.plist")
		var b strings.Builder
		str := func(v string) {
			b.WriteString("<string>")
			_ = xml.EscapeText(&b, []byte(v))
			b.WriteString("</string>")
		}
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
  <key>Label</key><string>com.docker-tls.agent</string>
  <key>ProgramArguments</key><array>`)
		str(exe)
		for _, arg := range args {
			str(arg)
		}
		b.WriteString("</array>\n  <key>EnvironmentVariables</key><dict><key>DOCKER_CONFIG</key>")
		str(configDir)
		b.WriteString("</dict>\n  <key>RunAtLoad</key><true/><key>KeepAlive</key><true/>\n</dict></plist>\n")
		return agentService{Path: path, Content: b.String(), Enable: "launchctl load -w " + path}, nil
	}
	if err := agentSupported(); err != nil {
		return agentService{}, err
	}
	return agentService{}, fmt.Errorf("agent install writes systemd (Linux) and launchd (macOS) services; on %s start docker tls agent from your login scripts", goos)
}

// systemdQuote quotes one word for a unit file: double quotes with \ and "
// escaped and % doubled (specifiers). Where systemd expands variables (the
// arguments of ExecStart=, not its executable, not Environment=) $ is
// doubled too; systemd-analyze verify confirms both.
func systemdQuote(s string, expands bool) string {
	pairs := []string{`\`, `\\`, `"`, `\"`, "%", "%%"}
	if expands {
		pairs = append(pairs, "$", "$$")
	}
	return `"` + strings.NewReplacer(pairs...).Replace(s) + `"`
}
