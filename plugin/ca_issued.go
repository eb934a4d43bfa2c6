package plugin

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/remoteca"
)

func newCAIssuedCommand(a *app) *cobra.Command {
	cmd := groupCommand("issued", "The inventory of certificates a served CA issued")
	ls := caDBListing{
		cmd: &cobra.Command{
			Use:   "ls [--ca NAME]",
			Short: "List certificates issued through docker tls ca serve, with their state",
			Long: `List what docker tls ca serve issued, oldest first. STATE is valid, renewed
(a newer certificate replaced it), expired or revoked (docker tls ca revoke).`,
			Example: `  docker tls ca issued ls --ca engine
  docker tls ca issued ls --ca engine --format json
  docker tls ca issued ls --ca team --db env:CA_DB --format '{{.Serial}} {{.State}}'`,
		},
		quietHelp: "Only show serials",
		rows: func(ctx context.Context, db *remoteca.DB) ([]map[string]any, error) {
			list, err := db.Issued(ctx)
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
			return rows, err
		},
		table: "table {{.Serial}}\t{{.CN}}\t{{.Groups}}\t{{.Profile}}\t{{.State}}\t{{.NotAfter}}\t{{.Source}}\t{{.IssuedAt}}",
		quiet: "{{.Serial}}",
		headers: map[string]string{"Serial": "SERIAL", "CN": "CN", "Groups": "GROUPS", "Profile": "PROFILE", "SANs": "SANS", "NotAfter": "EXPIRES", "Token": "TOKEN", "Source": "SOURCE", "IssuedAt": "ISSUED",
			"State": "STATE", "Renews": "RENEWS", "RenewedBy": "RENEWED BY", "RevokedAt": "REVOKED", "Reason": "REASON"},
	}
	cmd.AddCommand(ls.command(a))
	return cmd
}
