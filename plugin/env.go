package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/contexts"
)

type envOptions struct {
	shell string
}

func newEnvCommand(a *app) *cobra.Command {
	var opts envOptions
	cmd := &cobra.Command{
		Use:   "env NAME",
		Short: "Print DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for a context",
		Long: `Print shell commands that point the docker CLI (and other Docker API
clients) at a context's engine without using contexts: DOCKER_HOST,
DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (the context's own TLS directory,
in the ca.pem/cert.pem/key.pem layout). No key material is printed.`,
		Example: `  eval "$(docker tls env prod)"                      # bash, zsh
  docker tls env prod --shell fish | source            # fish
  docker tls env prod --shell powershell | Invoke-Expression`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEnv(a, opts, args[0])
		},
		ValidArgsFunction: completeContextNames(a, false),
	}
	cmd.Flags().StringVar(&opts.shell, "shell", "", "Shell syntax: bash, zsh, sh, fish, powershell, cmd (default: from $SHELL)")
	_ = cmd.RegisterFlagCompletionFunc("shell", cobra.FixedCompletions([]string{"bash", "zsh", "sh", "fish", "powershell", "cmd"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runEnv(a *app, opts envOptions, name string) error {
	c, err := a.contexts().Get(name)
	if err != nil {
		return err
	}
	if c.AgentMode() {
		fmt.Fprintf(a.cli.Out(), "export DOCKER_HOST=%s\n# agent mode: no TLS variables; the agent must be running (docker tls agent)\n", shQuote(c.Host))
		return nil
	}
	if !c.HasFile(contexts.CertFile) {
		return fmt.Errorf("context %q has no TLS client certificate", name)
	}
	if c.Locked() {
		fmt.Fprintf(a.cli.Err(), "warning: context %q is locked; run docker tls unlock %s first\n", name, name)
	}
	shell := opts.shell
	if shell == "" {
		shell = filepath.Base(os.Getenv("SHELL"))
		if runtime.GOOS == "windows" && shell == "." {
			shell = "powershell"
		}
	}
	vars := [][2]string{{"DOCKER_HOST", c.Host}, {"DOCKER_TLS_VERIFY", "1"}, {"DOCKER_CERT_PATH", c.TLSDir}}
	return printEnv(a, name, opts.shell, vars)
}

// printEnv prints variable assignments in the syntax of a shell (from
// $SHELL when none is given).
func printEnv(a *app, name, shell string, vars [][2]string) error {
	if shell == "" {
		shell = filepath.Base(os.Getenv("SHELL"))
		if runtime.GOOS == "windows" && shell == "." {
			shell = "powershell"
		}
	}
	out := a.cli.Out()
	switch shell {
	case "fish":
		for _, v := range vars {
			fmt.Fprintf(out, "set -gx %s %s;\n", v[0], fishQuote(v[1]))
		}
		fmt.Fprintf(out, "# Run this command to configure your shell:\n# docker tls env %s --shell fish | source\n", name)
	case "powershell", "pwsh":
		for _, v := range vars {
			fmt.Fprintf(out, "$Env:%s = \"%s\"\n", v[0], strings.ReplaceAll(v[1], "\"", "`\""))
		}
		fmt.Fprintf(out, "# Run this command to configure your shell:\n# & docker tls env %s --shell powershell | Invoke-Expression\n", name)
	case "cmd":
		for _, v := range vars {
			fmt.Fprintf(out, "SET %s=%s\n", v[0], v[1])
		}
	case "bash", "zsh", "sh", "dash", "ksh", "", ".":
		for _, v := range vars {
			fmt.Fprintf(out, "export %s=%s\n", v[0], shQuote(v[1]))
		}
		fmt.Fprintf(out, "# Run this command to configure your shell:\n# eval \"$(docker tls env %s)\"\n", name)
	default:
		return fmt.Errorf("unknown shell %q: use --shell bash, zsh, sh, fish, powershell or cmd", shell)
	}
	return nil
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}
