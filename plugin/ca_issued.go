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
	var db dbOptions
	ls := &cobra.Command{
		Use:     "ls [--ca NAME]",
		Aliases: []string{"list"},
		Short:   "List certificates issued through docker tls ca serve, with their state",
		Long: `List what docker tls ca serve issued, oldest first. STATE is valid, renewed
(a newer certificate replaced it), expired or revoked (docker tls ca revoke).`,
		Example: `  docker tls ca issued ls --ca engine
  docker tls ca issued ls --ca engine --format json
  docker tls ca issued ls --ca team --db env:CA_DB --format '{{.Serial}} {{.State}}'`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, store, err := db.openCA(cmd.Context(), a, opts.ca)
			if err != nil {
				return err
			}
			defer store.Close()
			list, err := store.Issued(cmd.Context())
			if err != nil {
				return err
			}
			now := time.Now()
			rows := make([]map[string]any, 0, len(list))
			for _, r := range list {
				revoked := ""
				if !r.RevokedAt.IsZero() {
					revoked = r.RevokedAt.Local().Format(time.RFC3339)
				}
				rows = append(rows, map[string]any{"Serial": r.Serial, "CN": r.CN, "Groups": strings.Join(r.Groups, ","), "Profile": r.Profile, "SANs": strings.Join(r.SANs, ","),
					"NotAfter": r.NotAfter.Local().Format(time.RFC3339), "Token": r.Token, "Source": r.Source, "IssuedAt": r.IssuedAt.Local().Format(time.RFC3339),
					"State": r.State(now), "Renews": r.Renews, "RenewedBy": r.RenewedBy, "RevokedAt": revoked, "Reason": r.Reason})
			}
			return writeRows(a, opts.format, opts.quiet, "table {{.Serial}}\t{{.CN}}\t{{.Groups}}\t{{.Profile}}\t{{.State}}\t{{.NotAfter}}\t{{.Source}}\t{{.IssuedAt}}", "{{.Serial}}", rows,
				map[string]string{"Serial": "SERIAL", "CN": "CN", "Groups": "GROUPS", "Profile": "PROFILE", "SANs": "SANS", "NotAfter": "EXPIRES", "Token": "TOKEN", "Source": "SOURCE", "IssuedAt": "ISSUED",
					"State": "STATE", "Renews": "RENEWS", "RenewedBy": "RENEWED BY", "RevokedAt": "REVOKED", "Reason": "REASON"})
		},
	}
	opts.install(ls, a, "Only show serials")
	db.install(ls.Flags())
	cmd.AddCommand(ls)
	return cmd
}
