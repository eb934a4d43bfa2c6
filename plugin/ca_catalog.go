package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/remoteca"
)

func newCACatalogCommand(a *app) *cobra.Command {
	cmd := groupCommand("catalog", "The team's catalog of engines a served CA keeps")
	ls := caDBListing{
		cmd: &cobra.Command{
			Use:   "ls [--ca NAME]",
			Short: "List the engines published to the catalog of docker tls ca serve",
			Long: `List the engines catalog admins published (docker tls engine publish), with
their endpoint and the grants of their policy: who gets a context for each
with docker tls enroll --engines, and with which role.`,
			Example: `  docker tls ca catalog ls --ca team
  docker tls ca catalog ls --ca team --format json
  docker tls ca catalog ls --ca team --db env:CA_DB --format '{{.Name}} {{.Host}}'`,
		},
		quietHelp: "Only show engine names",
		rows: func(ctx context.Context, db *remoteca.DB) ([]map[string]any, error) {
			list, err := db.Catalog(ctx)
			rows := make([]map[string]any, 0, len(list))
			for _, e := range list {
				rows = append(rows, map[string]any{"Name": e.Name, "Host": e.Host, "Grants": catalogGrants(e),
					"PublishedBy": e.PublishedBy, "Published": e.Published.Local().Format(time.RFC3339)})
			}
			return rows, err
		},
		table:   "table {{.Name}}\t{{.Host}}\t{{.Grants}}\t{{.PublishedBy}}\t{{.Published}}",
		quiet:   "{{.Name}}",
		headers: map[string]string{"Name": "ENGINE", "Host": "HOST", "Grants": "GRANTS", "PublishedBy": "PUBLISHED BY", "Published": "PUBLISHED"},
	}
	cmd.AddCommand(ls.command(a), newCACatalogRemoveCommand(a))
	return cmd
}

// catalogGrants says who an engine of the catalog gives a role, as the
// grants read in policy show.
func catalogGrants(e remoteca.CatalogEngine) string {
	if e.Policy == nil {
		return "no policy: any certificate is admin"
	}
	return e.Policy.String()
}

type caCatalogRemoveOptions struct {
	ca    string
	names []string
	db    dbOptions
}

func newCACatalogRemoveCommand(a *app) *cobra.Command {
	var opts caCatalogRemoveOptions
	cmd := &cobra.Command{
		Use:     "rm ENGINE... [--ca NAME]",
		Aliases: []string{"remove"},
		Short:   "Take engines out of the catalog, on the CA's own host",
		Long: `Take engines out of the catalog directly in the service's database, as the
CA's operator: for an engine whose admins cannot run docker tls engine
publish --remove any more. Contexts team members made stay theirs.`,
		Example: `  docker tls ca catalog rm build-1 --ca team
  docker tls ca catalog rm build-1 build-2 --ca team --db env:CA_DB`,
		Args: cli.RequiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.names = args
			return runCACatalogRemove(cmd.Context(), a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	cmd.Flags().StringVar(&opts.ca, "ca", castore.DefaultName, "CA")
	opts.db.install(cmd.Flags())
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(a))
	return cmd
}

func runCACatalogRemove(ctx context.Context, a *app, opts caCatalogRemoveOptions) error {
	_, store, err := opts.db.openCA(ctx, a, opts.ca)
	if err != nil {
		return err
	}
	defer store.Close()
	missing := 0
	for _, name := range opts.names {
		found, err := store.Unpublish(ctx, name)
		switch {
		case err != nil:
			return err
		case !found:
			missing++
			fmt.Fprintf(a.cli.Err(), "engine %q is not in the catalog of CA %q\n", name, opts.ca)
		default:
			fmt.Fprintf(a.cli.Out(), "%s: removed from the catalog\n", name)
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d of %d engines were not in the catalog: docker tls ca catalog ls --ca %s lists it", missing, len(opts.names), opts.ca)
	}
	return nil
}
