package plugin

import (
	"encoding/json"

	"github.com/docker-tls/docker-tls/internal/output"
	"github.com/docker-tls/docker-tls/keystore"
	flagsHelper "github.com/docker/cli/cli/flags"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command/formatter"
	"github.com/spf13/cobra"
)

type keysListOptions struct {
	format string
	quiet  bool
}

func newKeysListCommand(a *app) *cobra.Command {
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
			return runKeysList(a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	cmd.Flags().StringVar(&opts.format, "format", "", flagsHelper.FormatHelp)
	cmd.Flags().BoolVarP(&opts.quiet, "quiet", "q", false, "Only show key ids")
	return cmd
}

func runKeysList(a *app, opts keysListOptions) error {
	views, err := a.keyInventory()
	if err != nil {
		return err
	}
	l := output.Listing[keystore.Key]{Table: "table {{.ID}}\t{{.Type}}\t{{.Store}}\t{{.Owner}}\t{{.Status}}", Quiet: "{{.ID}}", Header: newKeyListContext(),
		Row: func(v *keystore.Key, _ bool) formatter.SubContext { return &keyListContext{v: v} }}
	return l.Write(a.cli.Out(), opts.format, opts.quiet, views)
}

type keyListContext struct {
	formatter.HeaderContext
	v *keystore.Key
}

func newKeyListContext() *keyListContext {
	c := &keyListContext{}
	c.Header = formatter.SubHeaderContext{"ID": "ID", "Type": "TYPE", "Store": "KEY STORE", "Owner": "OWNER", "Status": "STATUS"}
	return c
}

func (c *keyListContext) MarshalJSON() ([]byte, error) { return json.Marshal(c.v) }

func (c *keyListContext) ID() string { return c.v.ID }

func (c *keyListContext) Store() string { return c.v.Store }

func (c *keyListContext) Status() string { return c.v.Status }

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
