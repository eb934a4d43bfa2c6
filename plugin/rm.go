package plugin

import (
	"errors"
	"fmt"
	"strings"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/contexts"
)

type rmOptions struct {
	force bool
}

func newRemoveCommand(a *app) *cobra.Command {
	var opts rmOptions
	cmd := &cobra.Command{
		Use:     "rm NAME [NAME...]",
		Aliases: []string{"remove"},
		Short:   "Remove docker-tls contexts and their keys",
		Long: `Remove Docker contexts created by docker tls, with their client keys in the
key store. Asks for confirmation on a terminal; elsewhere --force is
required. The current context is removed only with --force.`,
		Example: `  docker tls rm lab
  docker tls rm --force old-1 old-2`,
		Args: cli.RequiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRemove(a, opts, args)
		},
		ValidArgsFunction: completeContextNames(a, true),
	}
	cmd.Flags().BoolVarP(&opts.force, "force", "f", false, "Remove without confirmation, including the current context")
	return cmd
}

func runRemove(a *app, opts rmOptions, names []string) error {
	if err := a.checkRemove(opts, names); err != nil {
		return err
	}
	if !opts.force {
		if !a.cli.In().IsTerminal() {
			return errors.New("removing deletes the client key for good: confirm with --force")
		}
		if !a.askYes(fmt.Sprintf("Remove %s and their keys from the key store?", strings.Join(names, ", "))) {
			return errors.New("not removed")
		}
	}
	var errs []error
	for _, n := range names {
		c, err := a.contexts().Remove(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c != nil && c.AgentMode() {
			_, _, _ = agent.Call(a.agentDir(), "reload") // the agent closes its socket and forgets the key now
		}
		fmt.Fprintln(a.cli.Out(), n)
	}
	return errors.Join(errs...)
}

// checkRemove refuses, before anything is removed, a name that is not a
// context docker tls made, or the current one, or a damaged one without
// --force.
func (a *app) checkRemove(opts rmOptions, names []string) error {
	for _, n := range names {
		c, err := a.contexts().Get(n)
		switch {
		case errors.Is(err, contexts.ErrNotFound):
			return err
		case err != nil && !opts.force:
			return fmt.Errorf("%w: docker tls rm --force %s removes it", err, n)
		case err != nil:
			continue // damaged: removed with --force
		case !c.Managed():
			return fmt.Errorf("context %q was not created by docker tls (no %s field); remove it with docker context rm", n, contexts.Field)
		case c.Name == a.cli.CurrentContext() && !opts.force:
			return fmt.Errorf("context %q is in use (docker context use): switch away first, or use --force", c.Name)
		}
	}
	return nil
}
