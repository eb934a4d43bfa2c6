package plugin

import (
	"errors"
	"fmt"
	"io"
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
	p := pruner{out: out, dryRun: opts.dryRun}
	for _, v := range views {
		if v.Status == keystore.KeyOrphan {
			ref := keystore.Ref{Store: v.Store, ID: v.ID}
			p.remove(fmt.Sprintf("orphan key %s (%s key store)", v.ID, v.Store), func() error { return a.keyStores().Delete(ref) })
		}
	}
	for _, f := range a.strayFiles() {
		p.remove(f, func() error { return os.RemoveAll(f) })
	}
	if p.n == 0 {
		fmt.Fprintln(out, "Nothing to prune")
	}
	return errors.Join(p.errs...)
}

// pruner removes what prune found, or with dryRun only says it would,
// counting what it removed and keeping what failed.
type pruner struct {
	out    io.Writer
	dryRun bool
	n      int
	errs   []error
}

func (p *pruner) remove(what string, del func() error) {
	verb := "would remove"
	if !p.dryRun {
		if err := del(); err != nil {
			p.errs = append(p.errs, err)
			return
		}
		verb = "removed"
	}
	p.n++
	fmt.Fprintf(p.out, "%s: %s\n", verb, what)
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
