package plugin

import (
	"fmt"
	"strings"

	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

// NewRootCommand returns the `tls` command with every verb under it. The same
// tree serves the plugin (docker tls …) and the standalone binary.
func NewRootCommand(dockerCLI command.Cli) *cobra.Command {
	e := &env{cli: dockerCLI}
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Mutual TLS for remote Docker engines: CAs, certificates and contexts",
		Long: `docker tls creates CAs, issues the server and client certificates that
protect a Docker engine's TCP socket with mutual TLS (dockerd --tlsverify),
keeps private keys in the OS keyring, creates Docker contexts that switch
between engines, and explains what is wrong with a TLS connection.

Files, keys, CAs and contexts are never overwritten without --force. Private
keys are written 0600 and never printed.`,
		Example: `  # A CA, a server certificate for the engine, a context for you
  docker tls ca init
  docker tls server issue engine.example.com 192.0.2.10 --out ./engine-tls
  docker tls context create prod --host tcp://engine.example.com:2376 --issue
  docker context use prod && docker ps
  docker tls verify prod`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.PersistentFlags().StringVar(&e.keystore, "keystore", "", "Where new private keys go: "+keystoreHelp()+" (default keyring)")
	_ = cmd.RegisterFlagCompletionFunc("keystore", completeKeystores)
	cmd.AddCommand(
		newCACommand(e),
		newServerCommand(e),
		newClientCommand(e),
		newContextCommand(e),
		newImportCommand(e),
		newListCommand(e),
		newRemoveCommand(e),
		newLockCommand(e),
		newUnlockCommand(e),
		newEnvCommand(e),
		newKeysCommand(e),
		newVerifyCommand(e),
		newEnrollCommand(e),
		newRenewCommand(e),
		newExportCommand(e),
		newInspectCommand(e),
		newDaemonConfigCommand(e),
		newHookCommand(e),
		newAgentCommand(e),
	)
	wrapRuns(e, cmd)
	return cmd
}

// keystoreHelp lists the key store kinds for flag help, from the one list
// in package keystore.
func keystoreHelp() string {
	var parts []string
	for _, k := range keystore.Kinds() {
		parts = append(parts, fmt.Sprintf("%q (%s)", k[0], k[1]))
	}
	return strings.Join(parts, " or ")
}

// completeKeystores completes --keystore and --to with the kinds and their help.
func completeKeystores(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	for _, k := range keystore.Kinds() {
		out = append(out, cobra.CompletionWithDesc(k[0], k[1]))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// groupCommand is a command that only groups others: run alone, it prints
// its help.
func groupCommand(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
}
