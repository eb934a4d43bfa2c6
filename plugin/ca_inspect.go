package plugin

import (
	"errors"
	"time"

	"github.com/docker-tls/docker-tls/internal/output"
	flagsHelper "github.com/docker/cli/cli/flags"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command/formatter"
	"github.com/spf13/cobra"
)

type caInspectOptions struct {
	format string
}

func newCAInspectCommand(a *app) *cobra.Command {
	var opts caInspectOptions
	cmd := &cobra.Command{
		Use:   "inspect NAME [NAME...]",
		Short: "Show details of one or more CAs",
		Example: `  docker tls ca inspect default
  docker tls ca inspect default --format '{{.Fingerprint}}'`,
		Args: cli.RequiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCAInspect(a, opts, args)
		},
		ValidArgsFunction: completeCANames(a),
	}
	cmd.Flags().StringVarP(&opts.format, "format", "f", "", flagsHelper.InspectFormatHelp)
	return cmd
}

func runCAInspect(a *app, opts caInspectOptions, names []string) error {
	store := a.cas()
	now := time.Now()
	var views []caView
	var failed []error
	for _, n := range names {
		c, err := store.Get(n)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		views = append(views, newCAView(c, now))
	}
	if opts.format == "" || opts.format == formatter.JSONFormatKey {
		if len(views) > 0 {
			if err := output.JSON(a.cli.Out(), views); err != nil {
				return err
			}
		}
	} else if err := output.Template(a.cli.Out(), opts.format, views); err != nil {
		return err
	}
	// Like docker inspect: print what was found, then fail for the rest.
	return errors.Join(failed...)
}
