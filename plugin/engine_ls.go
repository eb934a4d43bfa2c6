package plugin

import (
	"fmt"
	"time"

	"github.com/docker/cli/cli"
	flagsHelper "github.com/docker/cli/cli/flags"
	"github.com/spf13/cobra"
)

type engineListOptions struct {
	format string
	quiet  bool
}

func newEngineListCommand(a *app) *cobra.Command {
	var opts engineListOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List the engines docker tls set up",
		Example: `  docker tls engine ls
  docker tls engine ls --format '{{.Name}} {{.Expires}}'
  docker tls engine ls --format json`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEngineList(a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.format, "format", "", flagsHelper.FormatHelp)
	f.BoolVarP(&opts.quiet, "quiet", "q", false, "Only show engine names")
	return cmd
}

func runEngineList(a *app, opts engineListOptions) error {
	recs, bad, err := a.engines().List()
	if err != nil {
		return err
	}
	var rows []map[string]any
	for _, r := range recs {
		rows = append(rows, map[string]any{
			"Name": r.Name, "Dest": r.Dest, "Context": r.Context, "CA": r.CA, "Host": r.Host,
			"Mode": string(r.Mode), "Status": r.Status, "Serial": r.Serial, "Expires": r.NotAfter.Format("2006-01-02"),
			"ExpiresIn": time.Until(r.NotAfter).Round(time.Hour).String(),
		})
	}
	for name, err := range bad {
		fmt.Fprintf(a.cli.Err(), "engine %s: %v\n", name, err)
	}
	return writeRows(a, opts.format, opts.quiet,
		"table {{.Name}}\t{{.Dest}}\t{{.Context}}\t{{.CA}}\t{{.Expires}}\t{{.Mode}}\t{{.Status}}", "{{.Name}}", rows,
		map[string]string{"Name": "NAME", "Dest": "DESTINATION", "Context": "CONTEXT", "CA": "CA", "Expires": "SERVER CERT EXPIRES", "Mode": "CONFIGURED IN", "Status": "STATUS"})
}
