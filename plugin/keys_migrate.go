package plugin

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/keystore"
)

type keysMigrateOptions struct {
	to         string
	passphrase passphraseOptions
}

func newKeysMigrateCommand(a *app) *cobra.Command {
	var opts keysMigrateOptions
	cmd := &cobra.Command{
		Use:   "migrate --to keyring|file",
		Short: "Move every key into the OS keyring or the file key store",
		Long: `Move every key of every CA and context into one key store. Each key is
copied, its owner is updated, and only then is the old copy deleted, so an
interruption leaves each key usable from at least one store. CA keys moved
into the file store are encrypted when a passphrase is given.`,
		Example: `  docker tls keys migrate --to keyring
  docker tls keys migrate --to file --passphrase-file ~/.config/ca-pass`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeysMigrate(a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	cmd.Flags().StringVar(&opts.to, "to", "", "Target key store: keyring or file")
	opts.passphrase.install(cmd.Flags())
	_ = cmd.MarkFlagRequired("to")
	_ = cmd.RegisterFlagCompletionFunc("to", completeKeystores)
	return cmd
}

func runKeysMigrate(a *app, opts keysMigrateOptions) error {
	if err := keystore.CheckKind(opts.to); err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	pass, err := opts.passphrase.read()
	if err != nil {
		return err
	}
	keys, err := a.keyInventory()
	if err != nil {
		return err
	}
	moved := 0
	var errs []error
	for _, k := range keys {
		if k.Store == opts.to || k.Owner == "" || k.Status == keystore.KeyOwnerDamaged {
			continue
		}
		did, err := a.moveKey(k.Owner, opts.to, pass)
		if errors.Is(err, syscall.ENOSPC) {
			// Every later move would fail the same way.
			return err
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", k.Owner, k.ID, err))
			continue
		}
		if did {
			moved++
			fmt.Fprintf(a.cli.Out(), "%s: %s -> %s\n", k.Owner, k.Store, opts.to)
		}
	}
	fmt.Fprintf(a.cli.Out(), "Moved %d key(s) to the %s key store\n", moved, opts.to)
	return errors.Join(errs...)
}

// moveKey moves the key of owner (ca/NAME or context/NAME) to the key
// store to. The move re-reads its owner under the state lock: a key
// another command moved or replaced meanwhile is left as it now is (did
// is then false).
func (a *app) moveKey(owner, to string, pass []byte) (did bool, err error) {
	switch kind, name, _ := strings.Cut(owner, "/"); kind {
	case "ca":
		return a.cas().MoveKey(name, to, pass)
	case "context":
		return a.contexts().MoveKey(name, to)
	}
	return false, nil
}
