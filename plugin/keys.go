package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command/formatter"
	flagsHelper "github.com/docker/cli/cli/flags"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

func newKeysCommand(e *env) *cobra.Command {
	cmd := groupCommand("keys", "List private keys and move them between key stores")
	cmd.AddCommand(newKeysListCommand(e), newKeysMigrateCommand(e))
	return cmd
}

// keyView is one private key docker-tls keeps, and who uses it.
type keyView struct {
	ID    string
	Type  string
	Store string
	Owner string // "ca/NAME", "context/NAME", or "" for an orphan
}

// ownedKeys lists every key a CA or context refers to.
func (e *env) ownedKeys() ([]keyView, error) {
	var out []keyView
	cas, _, err := e.cas(nil).List()
	if err != nil {
		return nil, err
	}
	for _, c := range cas {
		out = append(out, keyView{ID: c.KeyID, Type: pki.DescribeKey(c.Cert.PublicKey), Store: c.KeyStore, Owner: "ca/" + c.Name})
	}
	list, _, err := e.contexts().List()
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		if c.Managed() {
			out = append(out, keyView{ID: c.TLS.KeyID, Type: c.TLS.KeyType, Store: c.TLS.KeyStore, Owner: "context/" + c.Name})
		}
	}
	return out, nil
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
		Short:   "List private keys: id, type, key store and owner (CA or context)",
		Long: `List the private keys docker-tls keeps, in the OS keyring and in the file
key store, with the CA or context that uses each. A key with no owner is
left over from an interrupted command. Key material is never shown.`,
		Example: `  docker tls keys ls
  docker tls keys ls --format json`,
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
	views, err := e.ownedKeys()
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, v := range views {
		known[v.Store+"/"+v.ID] = true
	}
	// Keys in a store that nothing refers to.
	for _, kind := range []string{KeystoreKeyring, KeystoreFile} {
		ks, err := e.keyStore(kind, nil)
		if err != nil {
			return err
		}
		ids, err := ks.List("")
		if err != nil {
			return err
		}
		for _, id := range ids {
			if !known[kind+"/"+id] {
				views = append(views, keyView{ID: id, Store: kind})
			}
		}
	}
	slices.SortFunc(views, func(a, b keyView) int { return strings.Compare(a.Owner+a.ID, b.Owner+b.ID) })
	format := opts.format
	switch {
	case opts.quiet:
		format = "{{.ID}}"
	case format == "" || format == formatter.TableFormatKey:
		format = "table {{.ID}}\t{{.Type}}\t{{.Store}}\t{{.Owner}}"
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
	c.Header = formatter.SubHeaderContext{"ID": "ID", "Type": "TYPE", "Store": "KEY STORE", "Owner": "OWNER"}
	return c
}

func (c *keyListContext) MarshalJSON() ([]byte, error) { return json.Marshal(c.v) }
func (c *keyListContext) ID() string                   { return c.v.ID }
func (c *keyListContext) Store() string                { return c.v.Store }
func (c *keyListContext) Type() string {
	if c.v.Type == "" {
		return "-"
	}
	return c.v.Type
}
func (c *keyListContext) Owner() string {
	if c.v.Owner == "" {
		return "- (orphan)"
	}
	return c.v.Owner
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
	_ = cmd.RegisterFlagCompletionFunc("to", cobra.FixedCompletions([]string{KeystoreKeyring, KeystoreFile}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runKeysMigrate(e *env, opts keysMigrateOptions) error {
	if opts.to != KeystoreKeyring && opts.to != KeystoreFile {
		return fmt.Errorf("--to %q: use keyring or file", opts.to)
	}
	pass, err := opts.passphrase.read()
	if err != nil {
		return err
	}
	owned, err := e.ownedKeys()
	if err != nil {
		return err
	}
	moved := 0
	var errs []error
	for _, k := range owned {
		if k.Store == opts.to {
			continue
		}
		if err := e.migrateKey(k, opts.to, pass); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", k.Owner, k.ID, err))
			continue
		}
		moved++
		fmt.Fprintf(e.cli.Out(), "%s: %s -> %s\n", k.Owner, k.Store, opts.to)
	}
	fmt.Fprintf(e.cli.Out(), "Moved %d key(s) to the %s key store\n", moved, opts.to)
	return errors.Join(errs...)
}

// migrateKey copies one key, updates its owner, then deletes the old copy.
func (e *env) migrateKey(k keyView, to string, pass []byte) error {
	src, err := e.keyStore(k.Store, pass)
	if err != nil {
		return err
	}
	// Only CA keys are encrypted in the file store: a context key must also
	// exist as a plain copy for the docker CLI anyway.
	var dstPass []byte
	if strings.HasPrefix(k.Owner, "ca/") {
		dstPass = pass
	}
	dst, err := e.keyStore(to, dstPass)
	if err != nil {
		return err
	}
	key, err := src.Get(k.ID)
	if err != nil {
		return err
	}
	// The id names the key (it carries its key identifier), so an entry left
	// by an interrupted migration holds the same key and may be replaced.
	if err := dst.Put(k.ID, key, true); err != nil {
		return err
	}
	switch kind, name, _ := strings.Cut(k.Owner, "/"); kind {
	case "ca":
		err = e.cas(nil).SetKeyStore(name, to)
	case "context":
		var c, gerr = e.managedContext(name)
		if gerr != nil {
			return gerr
		}
		meta := *c.TLS
		meta.KeyStore = to
		err = e.contexts().UpdateMeta(name, meta)
	}
	if err != nil {
		_ = dst.Delete(k.ID)
		return err
	}
	if err := src.Delete(k.ID); err != nil && !errors.Is(err, keystore.ErrNotFound) {
		return fmt.Errorf("copied and switched, but the old copy was not deleted: %w", err)
	}
	return nil
}
