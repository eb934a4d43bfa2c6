package plugin

import (
	"context"
	"strings"

	"github.com/docker/cli/cli"

	flagsHelper "github.com/docker/cli/cli/flags"

	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/internal/output"
	"github.com/docker-tls/docker-tls/remoteca"
)

// writeRows prints a listing whose items are map rows.
func writeRows(a *app, format string, quiet bool, table, quietFormat string, rows []map[string]any, headers map[string]string) error {
	return output.Rows(table, quietFormat, headers).Write(a.cli.Out(), format, quiet, rows)
}

// commonName shows "CN=alice" as "alice" and leaves longer names whole.
func commonName(dn string) string {
	if cn, ok := strings.CutPrefix(dn, "CN="); ok && !strings.Contains(cn, ",") {
		return cn
	}
	return dn
}

type caListFlags struct {
	ca     string
	format string
	quiet  bool
}

func (o *caListFlags) install(cmd *cobra.Command, a *app, quietHelp string) {
	f := cmd.Flags()
	f.StringVar(&o.ca, "ca", castore.DefaultName, "CA")
	f.StringVar(&o.format, "format", "", flagsHelper.FormatHelp)
	f.BoolVarP(&o.quiet, "quiet", "q", false, quietHelp)
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(a))
}

// caDBListing is an ls over a served CA's database (ca tokens ls, ca
// issued ls, ca catalog ls): its help in cmd, its rows, and how they
// print. The flags (--ca, --format, --quiet, --db) are the same for all.
type caDBListing struct {
	cmd       *cobra.Command
	quietHelp string
	rows      func(ctx context.Context, db *remoteca.DB) ([]map[string]any, error)
	table     string
	quiet     string
	headers   map[string]string
}

func (l caDBListing) command(a *app) *cobra.Command {
	var opts caListFlags
	var db dbOptions
	cmd := l.cmd
	cmd.Aliases = []string{"list"}
	cmd.Args = cli.NoArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		_, store, err := db.openCA(cmd.Context(), a, opts.ca)
		if err != nil {
			return err
		}
		defer store.Close()
		rows, err := l.rows(cmd.Context(), store)
		if err != nil {
			return err
		}
		return writeRows(a, opts.format, opts.quiet, l.table, l.quiet, rows, l.headers)
	}
	opts.install(cmd, a, l.quietHelp)
	db.install(cmd.Flags())
	return cmd
}
