package plugin

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli-plugins/hooks"
	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/spf13/cobra"
)

// newHookCommand answers the docker CLI's hook call after the commands
// configured in config.json ("plugins": {"tls": {"hooks": "context use"}}):
// after `docker context use NAME`, if NAME's certificate is close to expiry,
// the docker CLI shows the renew command under "What's next".
func newHookCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:    metadata.HookSubcommandName + " REQUEST",
		Hidden: true,
		Args:   cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runHook(a, cmd.OutOrStdout(), args[0])
		},
	}
}

func runHook(a *app, out io.Writer, request string) error {
	var req hooks.Request
	if err := json.Unmarshal([]byte(request), &req); err != nil {
		return fmt.Errorf("hook request: %w", err)
	}
	resp := hooks.Response{Type: hooks.NextSteps}
	// The docker CLI calls hooks after the command ran: for "context use"
	// the configuration already names the new current context. The message
	// is plain text, so docker 28's older template engine shows it too.
	if msg := a.expiryNotice(); msg != "" && req.CommandError == "" {
		resp.Template = "docker-tls: " + msg
	}
	return json.NewEncoder(out).Encode(resp)
}
