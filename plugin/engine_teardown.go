package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/engine"
)

type engineTeardownOptions struct {
	name        string
	keepContext bool
	force       bool
}

func newEngineTeardownCommand(a *app) *cobra.Command {
	var opts engineTeardownOptions
	cmd := &cobra.Command{
		Use:   "teardown NAME [--keep-context]",
		Short: "Put an engine's host back as it was before setup, and remove its context",
		Long: `Restore every file engine setup changed on the host to its bytes from before
the first setup (the drop-in, daemon.json, the TLS files), restart dockerd
(running containers keep running) so the TLS port is closed again, and
remove the engine's context and client key unless --keep-context.`,
		Example: `  docker tls engine teardown build-1
  docker tls engine teardown build-1 --keep-context
  docker tls engine teardown build-1 --force   # another engine record uses the same endpoint`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = args[0]
			return runEngineTeardown(cmd.Context(), a, opts)
		},
		ValidArgsFunction: completeEngineNames(a),
	}
	cmd.Flags().BoolVar(&opts.keepContext, "keep-context", false, "Keep the context and its key")
	cmd.Flags().BoolVar(&opts.force, "force", false, "Tear down even when other engines docker tls set up use the same host and port")
	return cmd
}

func runEngineTeardown(ctx context.Context, a *app, opts engineTeardownOptions) error {
	rec, err := a.engines().Get(opts.name)
	if err != nil {
		return engineNotFound(err, opts.name)
	}
	if !opts.force {
		others, err := a.engines().SharingHost(rec)
		if err != nil {
			return err
		}
		if len(others) > 0 {
			return fmt.Errorf("engine %s is also %s (%s): tearing it down breaks their contexts too; run again with --force, then docker tls engine teardown for each of them", strings.Join(others, ", "), rec.Host, rec.Name)
		}
	}
	s, err := a.dialEngine(ctx, rec)
	if err != nil {
		return err
	}
	defer s.Close()
	var removeContext func() error
	if !opts.keepContext {
		removeContext = func() error {
			_, err := a.contexts().Remove(rec.Context)
			if errors.Is(err, contexts.ErrNotFound) {
				return nil
			}
			return err
		}
	}
	restored, err := a.engines().Teardown(ctx, s, rec, removeContext)
	var ce *engine.ContextRemovalError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w (docker tls rm %s)", err, rec.Context)
	}
	if err != nil {
		return err
	}
	out := a.cli.Out()
	if restored {
		fmt.Fprintf(out, "%s: every file is as it was before setup, dockerd restarted, port %d closed\n", rec.Dest, rec.Port)
	} else {
		fmt.Fprintf(out, "%s: nothing of docker tls was left on the host\n", rec.Dest)
	}
	if !opts.keepContext {
		fmt.Fprintf(out, "Removed context %s and its key\n", rec.Context)
	}
	return nil
}

// openEngine reads the record of the engine named and connects to it.
func (a *app) openEngine(ctx context.Context, name string) (*engine.Record, *engine.Session, error) {
	rec, err := a.engines().Get(name)
	if err != nil {
		return nil, nil, engineNotFound(err, name)
	}
	s, err := a.dialEngine(ctx, rec)
	if err != nil {
		return nil, nil, err
	}
	return rec, s, nil
}

// dialEngine connects to a recorded engine the way setup did.
func (a *app) dialEngine(ctx context.Context, rec *engine.Record) (*engine.Session, error) {
	dest, err := engine.ParseDest(rec.Dest)
	if err != nil {
		return nil, err
	}
	s, err := engine.Dial(ctx, dest, rec.SSH)
	if err != nil {
		return nil, sshHint(err, dest, rec.SSH.Config)
	}
	return s, nil
}

func engineNotFound(err error, name string) error {
	if errors.Is(err, engine.ErrNoEngine) {
		return fmt.Errorf("no engine %q: docker tls engine ls lists them", name)
	}
	return err
}

func completeEngineNames(a *app) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		recs, _, _ := a.engines().List()
		var names []string
		for _, r := range recs {
			names = append(names, r.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// checkParallel and checkWait bound the flags every engine command that
// has them shares, with one wording.
func checkParallel(n int) error {
	if n < 1 || n > 64 {
		return fmt.Errorf("--parallel %d: give 1 to 64", n)
	}
	return nil
}

func checkWait(d time.Duration) error {
	if d <= 0 || d > time.Hour {
		return fmt.Errorf("--wait %s: give a duration from 1s to 1h", d)
	}
	return nil
}
