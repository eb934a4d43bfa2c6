package plugin

import (
	"fmt"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/internal/dbhelper"
)

// NewRootCommand returns the `tls` command with every verb under it. The same
// tree serves the plugin (docker tls …) and the standalone binary.
func NewRootCommand(dockerCLI command.Cli) *cobra.Command {
	return newRootCommand(&app{cli: dockerCLI})
}

func newRootCommand(a *app) *cobra.Command {
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
	cmd.PersistentFlags().StringVar(&a.keystore, "keystore", "", "Where new private keys go: "+keystoreHelp()+" (default keyring)")
	_ = cmd.RegisterFlagCompletionFunc("keystore", completeKeystores)
	cmd.AddCommand(
		newCACommand(a),
		newServerCommand(a),
		newClientCommand(a),
		newContextCommand(a),
		newEngineCommand(a),
		newImportCommand(a),
		newListCommand(a),
		newRemoveCommand(a),
		newLockCommand(a),
		newUnlockCommand(a),
		newEnvCommand(a),
		newKeysCommand(a),
		newVerifyCommand(a),
		newEnrollCommand(a),
		newRenewCommand(a),
		newExportCommand(a),
		newInspectCommand(a),
		newDaemonConfigCommand(a),
		newHookCommand(a),
		newAgentCommand(a),
		newAuthzPluginCommand(a),
	)
	wrapRuns(a, cmd)
	markLean(cmd)
	return cmd
}

// leanCommands are the commands (paths under `docker tls`) that run in the
// plugin itself. Every other command runs in docker-tls-db, the same program
// with the database drivers linked (package dbhelper), because it opens a
// CA's database or may: issuing records into the CA's inventory, renewing
// issues. These are what people run often (verify, ls, and the docker CLI's
// hook call) or what runs where only the plugin is installed (authz-plugin,
// on an engine's host); none of them opens a database.
func leanCommands() []string {
	return []string{
		"verify", "ls", "inspect", "env", "export", "daemon-config", "lock", "unlock",
		"docker-cli-plugin-hooks", "authz-plugin",
		"agent install", "agent status", "agent stop", "agent lock",
		"keys ls", "ca ls", "ca inspect", "engine ls", "engine audit", "engine policy show",
	}
}

// markLean marks the root (its help) and the lean commands; commands that
// only group others are marked by groupCommand.
func markLean(root *cobra.Command) {
	dbhelper.MarkLean(root)
	for _, path := range leanCommands() {
		if c := subcommand(root, strings.Fields(path)); c != nil {
			dbhelper.MarkLean(c)
		}
	}
}

// subcommand follows names down from c, or returns nil. Unlike cobra's
// Find it parses no flags: every docker tls command builds the tree.
func subcommand(c *cobra.Command, names []string) *cobra.Command {
	for _, name := range names {
		var next *cobra.Command
		for _, sub := range c.Commands() {
			if sub.Name() == name {
				next = sub
				break
			}
		}
		if next == nil {
			return nil
		}
		c = next
	}
	return c
}

// groupCommand is a command that only groups others: run alone, it prints
// its help.
func groupCommand(use, short string) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	dbhelper.MarkLean(c)
	return c
}

// wrapRuns makes every command print the expiry notice, once, on stderr
// before it runs (renew excepted: it is the fix), and say a full disk in
// one sentence however deep the error came from.
func wrapRuns(a *app, root *cobra.Command) {
	var visit func(*cobra.Command)
	visit = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			visit(sub)
		}
		if c.RunE == nil || c.Hidden {
			return
		}
		run, warn := c.RunE, c.Name() != "renew"
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if msg := a.expiryNotice(); warn && msg != "" {
				fmt.Fprintln(a.cli.Err(), "warning:", msg)
			}
			return hint(a.configDir(), run(cmd, args))
		}
	}
	visit(root)
}

// expiryNotice says, in one line, that the current context's client
// certificate needs renewing, or returns "".
func (a *app) expiryNotice() string {
	name := a.cli.CurrentContext()
	if name == "" || name == "default" {
		return ""
	}
	c, err := a.contexts().Get(name)
	if err != nil || !c.Managed() {
		return ""
	}
	// The engine behind the context, when docker tls set it up (a record
	// named like its context: one file read, no scan).
	if r, err := a.engines().Get(name); err == nil && r.Context == name {
		if msg := engineExpiryNotice(r, time.Now()); msg != "" {
			return msg
		}
	}
	if c.AgentMode() && !agent.Running(a.agentDir()) {
		return fmt.Sprintf("the current context %q is in agent mode and the agent is not running: run docker tls agent", name)
	}
	left := time.Until(c.TLS.NotAfter)
	switch {
	case left <= 0:
		return fmt.Sprintf("the client certificate of the current context %q expired on %s: run docker tls renew %s", name, c.TLS.NotAfter.Format("2006-01-02"), name)
	case left < renewWarnWithin:
		return fmt.Sprintf("the client certificate of the current context %q expires in %d days (%s): run docker tls renew %s",
			name, int(left.Hours()/24), c.TLS.NotAfter.Format("2006-01-02"), name)
	}
	return ""
}

// engineExpiryNotice says that an engine's server certificate needs
// renewing (within engineWarnWithin), or returns "".
func engineExpiryNotice(r *engine.Record, now time.Time) string {
	if r.NotAfter.IsZero() {
		return ""
	}
	left := r.NotAfter.Sub(now)
	switch {
	case left <= 0:
		return fmt.Sprintf("the server certificate of engine %s expired on %s: run docker tls engine renew %s", r.Name, r.NotAfter.Format("2006-01-02"), r.Name)
	case left < engineWarnWithin:
		return fmt.Sprintf("the server certificate of engine %s expires in %d days (%s): run docker tls engine renew %s", r.Name, int(left.Hours()/24), r.NotAfter.Format("2006-01-02"), r.Name)
	}
	return ""
}

// engineWarnWithin is when an engine's server certificate starts being
// mentioned: a restart is needed, so earlier than for client certificates.
const engineWarnWithin = 30 * 24 * time.Hour

// renewWarnWithin is when the current context's certificate starts being
// mentioned on every command.
const renewWarnWithin = 14 * 24 * time.Hour
