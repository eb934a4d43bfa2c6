package plugin

import (
	"errors"
	"fmt"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/contexts"
)

func newLockCommand(a *app) *cobra.Command {
	var toAgent bool
	cmd := &cobra.Command{
		Use:   "lock NAME",
		Short: "Remove a context's on-disk key copy, keeping the key in the key store",
		Long: `Remove the key.pem copy from a docker-tls context. The key stays in the key
store; until docker tls unlock NAME, the docker CLI cannot use the context
(it fails to load the TLS key), and docker tls ls shows it as locked.

With --agent the context is converted to agent mode for good: no key file,
and the docker CLI reaches the engine through docker tls agent.`,
		Example: `  docker tls lock prod
  docker tls unlock prod
  docker tls lock --agent prod`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if toAgent {
				c, err := a.contexts().Managed(args[0])
				if err != nil {
					return err
				}
				return a.convertToAgent(c)
			}
			return runLock(a, args[0])
		},
		ValidArgsFunction: completeContextNames(a, true),
	}
	cmd.Flags().BoolVar(&toAgent, "agent", false, "Convert the context to agent mode (no key file at all)")
	return cmd
}

func newUnlockCommand(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "unlock NAME",
		Short: "Restore a locked context's key copy from the key store",
		Long: `Write the context's key.pem copy again from the key store, after checking
that the stored key is the key of the context's certificate. With --force
it also replaces a key.pem that is there but damaged or not the key of the
certificate, which docker tls verify reports as a client-key failure.`,
		Example: `  docker tls unlock prod
  docker tls unlock --force prod`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUnlock(a, args[0], force)
		},
		ValidArgsFunction: completeContextNames(a, true),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Also replace a key.pem that does not match the certificate")
	return cmd
}

func runLock(a *app, name string) error {
	err := a.contexts().Lock(name)
	switch {
	case errors.Is(err, contexts.ErrAlreadyLocked):
		fmt.Fprintf(a.cli.Out(), "Context %q is already locked\n", name)
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(a.cli.Out(), "Locked context %q: the docker CLI cannot use it until docker tls unlock %s\n", name, name)
	return nil
}

func runUnlock(a *app, name string, force bool) error {
	err := a.contexts().Unlock(name, force)
	switch {
	case errors.Is(err, contexts.ErrNotLocked):
		fmt.Fprintf(a.cli.Out(), "Context %q is not locked\n", name)
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(a.cli.Out(), "Unlocked context %q\n", name)
	return nil
}

// convertToAgent rewrites a managed context into agent mode (lock --agent).
func (a *app) convertToAgent(c *contexts.Context) error {
	if err := agentSupported(); err != nil {
		return err
	}
	if c.AgentMode() {
		fmt.Fprintf(a.cli.Out(), "Context %q is already in agent mode\n", c.Name)
		return nil
	}
	if _, err := a.contexts().ToAgent(c.Name, agent.SocketPath(a.agentDir(), c.Name)); err != nil {
		return err
	}
	_, _, _ = agent.Call(a.agentDir(), "reload")
	fmt.Fprintf(a.cli.Out(), "Context %q is in agent mode: its key file is gone; the key lives only in the %s key store\n", c.Name, c.TLS.KeyStore)
	if !agent.Running(a.agentDir()) {
		fmt.Fprintln(a.cli.Out(), "Start the agent: docker tls agent")
	}
	return nil
}
