package plugin

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/keystore"
)

type keysPruneOptions struct {
	dryRun bool
}

func newKeysPruneCommand(a *app) *cobra.Command {
	var opts keysPruneOptions
	cmd := &cobra.Command{
		Use:   "prune [--dry-run]",
		Short: "Remove orphan keys and what interrupted commands left behind",
		Long: `Finish or undo what an interrupted docker tls command left (every command
that changes keys does that first), then remove every key that no CA or
context uses, from the OS keyring and the file key store, and the
temporary files older versions of docker tls could leave. Keys named after
a CA or context that cannot be read are kept. A damaged keyring index is
rebuilt from the CAs and contexts that use keyring keys.`,
		Example: `  docker tls keys prune --dry-run
  docker tls keys prune`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeysPrune(a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "Say what would be removed, remove nothing")
	return cmd
}

func runKeysPrune(a *app, opts keysPruneOptions) error {
	release, err := a.lockState()
	if err != nil {
		return err
	}
	defer release()
	out := a.cli.Out()
	if err := a.repairKeyringIndex(opts.dryRun); err != nil {
		return err
	}
	views, err := a.keyInventory()
	if err != nil {
		return err
	}
	verb := "removed"
	if opts.dryRun {
		verb = "would remove"
	}
	n := 0
	var errs []error
	for _, v := range views {
		if v.Status != keystore.KeyOrphan {
			continue
		}
		if !opts.dryRun {
			if err := a.keyStores().Delete(keystore.Ref{Store: v.Store, ID: v.ID}); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		n++
		fmt.Fprintf(out, "%s: orphan key %s (%s key store)\n", verb, v.ID, v.Store)
	}
	for _, f := range a.strayFiles() {
		if !opts.dryRun {
			if err := os.RemoveAll(f); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		n++
		fmt.Fprintf(out, "%s: %s\n", verb, f)
	}
	if n == 0 {
		fmt.Fprintln(out, "Nothing to prune")
	}
	return errors.Join(errs...)
}

// repairKeyringIndex rebuilds a damaged keyring index from the CAs and
// contexts that record keyring keys.
func (a *app) repairKeyringIndex(dryRun bool) error {
	kr := a.keyStores().Keyring()
	if _, err := kr.List(""); !errors.Is(err, keystore.ErrIndexDamaged) {
		return nil
	}
	uses, _, err := a.keyUses()
	if err != nil {
		return err
	}
	var ids []string
	for _, u := range uses {
		if u.Store == keystore.KindKeyring {
			ids = append(ids, u.ID)
		}
	}
	if dryRun {
		fmt.Fprintf(a.cli.Out(), "would rebuild the damaged keyring index %s from %d key(s) in use\n", kr.IndexPath, len(ids))
		return nil
	}
	if err := kr.RebuildIndex(ids); err != nil {
		return err
	}
	fmt.Fprintf(a.cli.Out(), "rebuilt the damaged keyring index %s from %d key(s) in use (the damaged file is kept beside it)\n", kr.IndexPath, len(ids))
	return nil
}

// strayFiles are what killed commands of older versions, or the docker
// CLI's own writes, could leave in each store.
func (a *app) strayFiles() []string {
	return slices.Concat(a.keyStores().Strays(), a.cas().Strays(), a.contexts().Strays())
}
