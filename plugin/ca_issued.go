package plugin

import (
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"
)

func newCAIssuedCommand(a *app) *cobra.Command {
	cmd := groupCommand("issued", "The inventory of certificates a served CA issued")
	var opts caListFlags
	ls := &cobra.Command{
		Use:     "ls [--ca NAME]",
		Aliases: []string{"list"},
		Short:   "List certificates issued through docker tls ca serve",
		Example: `  docker tls ca issued ls --ca engine
  docker tls ca issued ls --ca engine --format json`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			stored, err := a.cas().Get(opts.ca)
			if err != nil {
				return err
			}
			list, err := caInventory(stored).List()
			if err != nil {
				return err
			}
			rows := make([]map[string]any, 0, len(list))
			for _, r := range list {
				rows = append(rows, map[string]any{"Serial": r.Serial, "CN": r.CN, "Profile": r.Profile, "SANs": strings.Join(r.SANs, ","),
					"NotAfter": r.NotAfter.Local().Format("2006-01-02"), "Token": r.Token, "Source": r.Source, "IssuedAt": r.IssuedAt.Local().Format(time.RFC3339)})
			}
			return writeRows(a, opts.format, opts.quiet, "table {{.Serial}}\t{{.CN}}\t{{.Profile}}\t{{.NotAfter}}\t{{.Source}}\t{{.IssuedAt}}", "{{.Serial}}", rows,
				map[string]string{"Serial": "SERIAL", "CN": "CN", "Profile": "PROFILE", "SANs": "SANS", "NotAfter": "EXPIRES", "Token": "TOKEN", "Source": "SOURCE", "IssuedAt": "ISSUED"})
		},
	}
	opts.install(ls, a, "Only show serials")
	cmd.AddCommand(ls)
	return cmd
}
