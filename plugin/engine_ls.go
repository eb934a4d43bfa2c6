package plugin

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/docker/cli/cli"
	flagsHelper "github.com/docker/cli/cli/flags"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/probe"
)

type engineListOptions struct {
	format   string
	quiet    bool
	check    bool
	parallel int
	timeout  time.Duration
}

func newEngineListCommand(a *app) *cobra.Command {
	var opts engineListOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List the engines docker tls set up",
		Long: `List the engines docker tls set up: where they are, their context and CA, and
when their server certificate expires. With --check, each engine is asked
over mutual TLS (with its context's identity, --parallel at a time):
whether it answers, whether it serves the certificate docker tls recorded,
its Docker version and whether live-restore is on; and over SSH, when it
has a policy (engine policy set), how old its revocation list is.`,
		Example: `  docker tls engine ls
  docker tls engine ls --check
  docker tls engine ls --format '{{.Name}} {{.Expires}}'
  docker tls engine ls --check --format json`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEngineList(cmd.Context(), a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.format, "format", "", flagsHelper.FormatHelp)
	f.BoolVarP(&opts.quiet, "quiet", "q", false, "Only show engine names")
	f.BoolVar(&opts.check, "check", false, "Ask each engine whether it serves what was recorded")
	f.IntVar(&opts.parallel, "parallel", 8, "With --check: engines asked at once, 1 to 64")
	f.DurationVar(&opts.timeout, "timeout", 5*time.Second, "With --check: bound on each network step")
	return cmd
}

func runEngineList(ctx context.Context, a *app, opts engineListOptions) error {
	if err := checkParallel(opts.parallel); err != nil {
		return err
	}
	if opts.timeout <= 0 || opts.timeout > 10*time.Minute {
		return fmt.Errorf("--timeout %s: give a duration from 1s to 10m", opts.timeout)
	}
	recs, bad, err := a.engines().List()
	if err != nil {
		return err
	}
	rows := make([]map[string]any, len(recs))
	for i, r := range recs {
		rows[i] = map[string]any{
			"Name": r.Name, "Dest": r.Dest, "Context": r.Context, "CA": r.CA, "Host": r.Host,
			"Mode": string(r.Mode), "Status": r.Status, "Serial": r.Serial, "Expires": r.NotAfter.Format("2006-01-02"),
		}
	}
	for name, err := range bad {
		fmt.Fprintf(a.cli.Err(), "engine %s: %v\n", name, err)
	}
	table := "table {{.Name}}\t{{.Dest}}\t{{.Context}}\t{{.CA}}\t{{.Expires}}\t{{.Mode}}\t{{.Status}}"
	if opts.check && !opts.quiet {
		var wg sync.WaitGroup
		sem := make(chan struct{}, opts.parallel)
		for i, r := range recs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				for k, v := range a.checkEngine(ctx, r, opts.timeout) {
					rows[i][k] = v
				}
			}()
		}
		wg.Wait()
		table = "table {{.Name}}\t{{.Context}}\t{{.Expires}}\t{{.Reachable}}\t{{.Served}}\t{{.Version}}\t{{.LiveRestore}}\t{{.Revocations}}"
	}
	return writeRows(a, opts.format, opts.quiet, table, "{{.Name}}", rows,
		map[string]string{"Name": "NAME", "Dest": "DESTINATION", "Context": "CONTEXT", "CA": "CA", "Expires": "SERVER CERT EXPIRES",
			"Mode": "CONFIGURED IN", "Status": "STATUS", "Reachable": "REACHABLE", "Served": "SERVED CERT", "Version": "DOCKER", "LiveRestore": "LIVE-RESTORE", "Revocations": "REVOCATION LIST"})
}

// checkEngine asks one engine, with its context's identity, what it
// serves. Every answer is a short word or sentence for the table.
func (a *app) checkEngine(ctx context.Context, r *engine.Record, timeout time.Duration) map[string]any {
	res := map[string]any{"Reachable": "-", "Served": "-", "Version": "-", "LiveRestore": "-", "Revocations": "-"}
	res["Revocations"] = a.revocationAge(ctx, r, timeout)
	t, err := a.contextTarget(r.Context)
	if err != nil {
		res["Reachable"] = "no context: " + err.Error()
		return res
	}
	t.Host = r.Host
	rep := probe.Run(ctx, t, probe.Options{Timeout: timeout})
	if c := rep.First(probe.Fail); c != nil {
		res["Reachable"] = "no: " + c.Message
	} else {
		res["Reachable"] = "yes"
	}
	switch {
	case rep.ServerSerial == "":
	case rep.ServerSerial == r.Serial:
		res["Served"] = "recorded"
	default:
		res["Served"] = "OTHER (serial " + rep.ServerSerial + ")"
	}
	if rep.Engine != nil {
		res["Version"] = rep.Engine.Version
		if on, err := probe.LiveRestore(ctx, t, timeout); err == nil {
			res["LiveRestore"] = onOff(on)
		}
	}
	return res
}

// revocationAge asks an engine's plugin, over SSH, how old the
// revocation list it enforces is: "no policy" when it has none.
func (a *app) revocationAge(ctx context.Context, r *engine.Record, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, 3*timeout)
	defer cancel()
	s, err := a.dialEngine(ctx, r)
	if err != nil {
		return "unknown (ssh failed)"
	}
	defer s.Close()
	st, err := engine.PolicyStatus(ctx, s)
	switch {
	case err != nil:
		return "unknown (the plugin did not answer)"
	case st == nil:
		return "no policy"
	}
	return st.RevocationAge(time.Now())
}
