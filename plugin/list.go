package plugin

import (
	"strings"

	flagsHelper "github.com/docker/cli/cli/flags"

	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/internal/output"
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
