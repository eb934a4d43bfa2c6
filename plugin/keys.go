package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command/formatter"
	flagsHelper "github.com/docker/cli/cli/flags"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

func newKeysCommand(e *env) *cobra.Command {
	cmd := groupCommand("keys", "List private keys, move them between key stores, remove orphans")
	cmd.AddCommand(newKeysListCommand(e), newKeysMigrateCommand(e), newKeysPruneCommand(e))
	return cmd
}

// keyView is one private key docker-tls keeps, and who uses it.
type keyView struct {
	ID    string
	Type  string
	Store string
	Owner string // "ca/NAME", "context/NAME", or "" for an orphan
	// Status is "ok", "orphan" (in a store, used by nothing), "missing"
	// (used, but not in its store) or "owner damaged" (named after a
	// context or CA that cannot be read).
	Status string
}

// Key statuses.
const (
	keyOK      = "ok"
	keyOrphan  = "orphan"
	keyMissing = "missing"
	keyDamaged = "owner damaged"
)

// keyInventory is every key docker-tls knows of: those its CAs and
// contexts use, and every id either key store lists (the keyring's index
// names each entry before it is written, so this is every entry docker-tls
// ever made there).
func (e *env) keyInventory() ([]keyView, error) {
	var views []keyView
	owned := map[keystore.Ref]int{}
	cas, badCAs, err := e.cas().List()
	if err != nil {
		return nil, err
	}
	for _, c := range cas {
		owned[c.KeyRef()] = len(views)
		views = append(views, keyView{ID: c.KeyID, Type: pki.DescribeKey(c.Cert.PublicKey), Store: c.KeyStore, Owner: "ca/" + c.Name, Status: keyMissing})
	}
	list, badContexts, err := e.contexts().List()
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		if c.Managed() {
			owned[c.KeyOf()] = len(views)
			views = append(views, keyView{ID: c.TLS.KeyID, Type: c.TLS.KeyType, Store: c.TLS.KeyStore, Owner: "context/" + c.Name, Status: keyMissing})
		}
	}
	for _, kind := range keystore.KindNames() {
		ks, err := e.keyStore(kind, nil)
		if err != nil {
			return nil, err
		}
		ids, err := ks.List("")
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if i, ok := owned[keystore.Ref{Store: kind, ID: id}]; ok {
				views[i].Status = keyOK
				continue
			}
			v := keyView{ID: id, Store: kind, Status: keyOrphan}
			if owner := damagedOwner(id, badCAs, badContexts); owner != "" {
				v.Owner, v.Status = owner, keyDamaged
			}
			views = append(views, v)
		}
	}
	slices.SortFunc(views, func(a, b keyView) int { return strings.Compare(a.Owner+a.ID, b.Owner+b.ID) })
	return views, nil
}

// damagedOwner names the CA or context that cannot be read and whose key
// id is, so that nothing deletes the key of something the user may repair.
func damagedOwner(id string, badCAs, badContexts map[string]error) string {
	for name := range badContexts {
		if contexts.IsKeyOf(id, name) {
			return "context/" + name
		}
	}
	for name := range badCAs {
		if strings.HasPrefix(id, "ca-"+name+"-") {
			return "ca/" + name
		}
	}
	return ""
}

type keysListOptions struct {
	format string
	quiet  bool
}

func newKeysListCommand(e *env) *cobra.Command {
	var opts keysListOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List private keys: id, type, key store, owner (CA or context) and status",
		Long: `List every private key docker-tls keeps, in the OS keyring and in the file
key store, with the CA or context that uses it. STATUS is "ok", "orphan"
(nothing uses it: left by an interrupted command or an older version;
docker tls keys prune removes it), "missing" (used, but not in its store)
or "owner damaged" (named after a CA or context that cannot be read).
Key material is never shown.`,
		Example: `  docker tls keys ls
  docker tls keys ls --format json
  docker tls keys ls --format '{{.ID}} {{.Status}}'`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeysList(e, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	cmd.Flags().StringVar(&opts.format, "format", "", flagsHelper.FormatHelp)
	cmd.Flags().BoolVarP(&opts.quiet, "quiet", "q", false, "Only show key ids")
	return cmd
}

func runKeysList(e *env, opts keysListOptions) error {
	views, err := e.keyInventory()
	if err != nil {
		return err
	}
	format := opts.format
	switch {
	case opts.quiet:
		format = "{{.ID}}"
	case format == "" || format == formatter.TableFormatKey:
		format = "table {{.ID}}\t{{.Type}}\t{{.Store}}\t{{.Owner}}\t{{.Status}}"
	}
	ctx := formatter.Context{Output: e.cli.Out(), Format: formatter.Format(format)}
	return ctx.Write(newKeyListContext(), func(write func(formatter.SubContext) error) error {
		for i := range views {
			if err := write(&keyListContext{v: &views[i]}); err != nil {
				return err
			}
		}
		return nil
	})
}

type keyListContext struct {
	formatter.HeaderContext
	v *keyView
}

func newKeyListContext() *keyListContext {
	c := &keyListContext{}
	c.Header = formatter.SubHeaderContext{"ID": "ID", "Type": "TYPE", "Store": "KEY STORE", "Owner": "OWNER", "Status": "STATUS"}
	return c
}

func (c *keyListContext) MarshalJSON() ([]byte, error) { return json.Marshal(c.v) }
func (c *keyListContext) ID() string                   { return c.v.ID }
func (c *keyListContext) Store() string                { return c.v.Store }
func (c *keyListContext) Status() string               { return c.v.Status }
func (c *keyListContext) Type() string {
	if c.v.Type == "" {
		return "-"
	}
	return c.v.Type
}
func (c *keyListContext) Owner() string {
	if c.v.Owner == "" {
		return "-"
	}
	return c.v.Owner
}

type keysPruneOptions struct {
	dryRun bool
}

func newKeysPruneCommand(e *env) *cobra.Command {
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
			return runKeysPrune(e, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "Say what would be removed, remove nothing")
	return cmd
}

func runKeysPrune(e *env, opts keysPruneOptions) error {
	release, err := e.lockState()
	if err != nil {
		return err
	}
	defer release()
	out := e.cli.Out()
	if err := e.repairKeyringIndex(opts.dryRun); err != nil {
		return err
	}
	views, err := e.keyInventory()
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
		if v.Status != keyOrphan {
			continue
		}
		if !opts.dryRun {
			if err := e.keyStores().Delete(keystore.Ref{Store: v.Store, ID: v.ID}); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		n++
		fmt.Fprintf(out, "%s: orphan key %s (%s key store)\n", verb, v.ID, v.Store)
	}
	for _, f := range e.strayFiles() {
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
func (e *env) repairKeyringIndex(dryRun bool) error {
	kr := keystore.NewKeyring(e.keyStores().Dir)
	if _, err := kr.List(""); !errors.Is(err, keystore.ErrIndexDamaged) {
		return nil
	}
	var ids []string
	cas, _, err := e.cas().List()
	if err != nil {
		return err
	}
	for _, c := range cas {
		if c.KeyStore == keystore.KindKeyring {
			ids = append(ids, c.KeyID)
		}
	}
	list, _, err := e.contexts().List()
	if err != nil {
		return err
	}
	for _, c := range list {
		if c.Managed() && c.TLS.KeyStore == keystore.KindKeyring {
			ids = append(ids, c.TLS.KeyID)
		}
	}
	if dryRun {
		fmt.Fprintf(e.cli.Out(), "would rebuild the damaged keyring index %s from %d key(s) in use\n", kr.IndexPath, len(ids))
		return nil
	}
	if err := kr.RebuildIndex(ids); err != nil {
		return err
	}
	fmt.Fprintf(e.cli.Out(), "rebuilt the damaged keyring index %s from %d key(s) in use (the damaged file is kept beside it)\n", kr.IndexPath, len(ids))
	return nil
}

// strayFiles are temporary files and directories that older versions of
// docker tls, or the docker CLI's own writes, could leave: temporary key
// copies beside the file store's keys, half-made CA directories and
// temporary files in context directories. A full scan: prune only.
func (e *env) strayFiles() []string {
	var out []string
	globs := []string{
		filepath.Join(e.keyStores().Dir, ".*.tmp-*"),
		filepath.Join(e.stateDir(), "ca", ".*.new-*"),
		filepath.Join(e.stateDir(), "ca", ".*.old-*"),
		filepath.Join(e.configDir(), "contexts", "tls", "*", "*", ".tmp-*"),
		filepath.Join(e.configDir(), "contexts", "meta", "*", ".tmp-*"),
	}
	for _, g := range globs {
		m, _ := filepath.Glob(g)
		out = append(out, m...)
	}
	return out
}

type keysMigrateOptions struct {
	to         string
	passphrase passphraseOptions
}

func newKeysMigrateCommand(e *env) *cobra.Command {
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
			return runKeysMigrate(e, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	cmd.Flags().StringVar(&opts.to, "to", "", "Target key store: keyring or file")
	cmd.Flags().StringVar(&opts.passphrase.file, "passphrase-file", "", "Passphrase for encrypted file-store CA keys (read and write)")
	_ = cmd.MarkFlagRequired("to")
	_ = cmd.RegisterFlagCompletionFunc("to", completeKeystores)
	return cmd
}

func runKeysMigrate(e *env, opts keysMigrateOptions) error {
	if err := keystore.CheckKind(opts.to); err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	pass, err := opts.passphrase.read()
	if err != nil {
		return err
	}
	keys, err := e.keyInventory()
	if err != nil {
		return err
	}
	moved := 0
	var errs []error
	for _, k := range keys {
		if k.Store == opts.to || k.Owner == "" || k.Status == keyDamaged {
			continue
		}
		// Each move re-reads its owner under the state lock: a key another
		// command moved or replaced meanwhile is left as it now is.
		var did bool
		switch kind, name, _ := strings.Cut(k.Owner, "/"); kind {
		case "ca":
			did, err = e.cas().MoveKey(name, opts.to, pass)
		case "context":
			did, err = e.contexts().MoveKey(name, opts.to)
		}
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
			fmt.Fprintf(e.cli.Out(), "%s: %s -> %s\n", k.Owner, k.Store, opts.to)
		}
	}
	fmt.Fprintf(e.cli.Out(), "Moved %d key(s) to the %s key store\n", moved, opts.to)
	return errors.Join(errs...)
}
