package plugin

import (
	"github.com/spf13/cobra"
)

func newCACommand(a *app) *cobra.Command {
	cmd := groupCommand("ca", "Create, import and list certificate authorities")
	cmd.AddCommand(newCAInitCommand(a), newCAImportCommand(a), newCAListCommand(a), newCAInspectCommand(a),
		newCAServeCommand(a), newCATokenCommand(a), newCATokensCommand(a), newCARevokeTokenCommand(a), newCAIssuedCommand(a), newCACatalogCommand(a), newCARevokeCommand(a), newCACRLCommand(a), newCARotateCommand(a))
	return cmd
}
