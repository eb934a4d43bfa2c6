package plugin

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command/formatter"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/authz"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/internal/output"
	"github.com/docker-tls/docker-tls/pki"
)

type engineAuditOptions struct {
	name   string
	since  string
	user   string
	denied bool
	follow bool
	format string
}

func newEngineAuditCommand(a *app) *cobra.Command {
	var opts engineAuditOptions
	cmd := &cobra.Command{
		Use:   "audit ENGINE [--since DUR] [--user CN] [--denied] [--follow]",
		Short: "Show who called an engine and what its policy decided",
		Long: `Read the audit trail an engine's policy keeps on its host, over SSH: one record
per API call, with the time, the caller's user, groups and certificate serial,
the method and path, the decision and the grant or rule that made it. The host
filters the records; the oldest come first, and --follow waits for new ones.`,
		Example: `  docker tls engine audit build-1 --since 1h
  docker tls engine audit build-1 --denied --user alice
  docker tls engine audit build-1 --follow
  docker tls engine audit build-1 --since 1d --format json | jq -r .path`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = args[0]
			return runEngineAudit(cmd.Context(), a, opts)
		},
		ValidArgsFunction: completeEngineNames(a),
	}
	f := cmd.Flags()
	f.StringVar(&opts.since, "since", "", "Records of the last span only (30m, 12h, 7d)")
	f.StringVar(&opts.user, "user", "", "One user's records (the certificate's CN)")
	f.BoolVar(&opts.denied, "denied", false, "Refusals only")
	f.BoolVarP(&opts.follow, "follow", "f", false, "Then wait for new records until interrupted")
	f.StringVar(&opts.format, "format", "", "table (default), json (one object a line), or a Go template (fields .Time .User .Groups .Serial .Method .Path .Allow .Role .Needs .Rule)")
	return cmd
}

func runEngineAudit(ctx context.Context, a *app, opts engineAuditOptions) error {
	q := engine.AuditQuery{User: opts.user, Denied: opts.denied, Follow: opts.follow}
	if opts.since != "" {
		d, err := parseSpan(opts.since)
		if err != nil {
			return fmt.Errorf("--since %w", err)
		}
		q.Since = time.Now().Add(-d)
	}
	if opts.user != "" {
		if err := pki.CheckName("common name", opts.user); err != nil {
			return fmt.Errorf("--user: %w", err)
		}
	}
	write, err := auditWriter(a.cli.Out(), opts.format)
	if err != nil {
		return err
	}
	rec, s, err := a.openEngine(ctx, opts.name)
	if err != nil {
		return err
	}
	defer s.Close()
	if opts.follow {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		ctx = untilOrphaned(ctx)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
		var werr error
		for sc.Scan() {
			var d authz.Decision
			if werr == nil && json.Unmarshal(sc.Bytes(), &d) == nil {
				werr = write(d, sc.Bytes())
			}
		}
		done <- werr
	}()
	err = engine.ReadAudit(ctx, s, q, pw)
	pw.Close()
	if werr := <-done; werr != nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("the audit trail of %s: %w", rec.Name, err)
	}
	return nil
}

// auditWriter prints one record as format says; the table's columns are
// fixed so that followed records line up without buffering.
func auditWriter(out io.Writer, format string) (func(authz.Decision, []byte) error, error) {
	switch format {
	case "", formatter.TableFormatKey:
		header := false
		return func(d authz.Decision, _ []byte) error {
			if !header {
				header = true
				fmt.Fprintf(out, "%-19s  %-16s  %-8s  %-8s  %-6s  %-40s  %s\n", "TIME", "USER", "DECISION", "ROLE", "METHOD", "PATH", "RULE")
			}
			decision := "allowed"
			if !d.Allow {
				decision = "refused"
			}
			user := d.User
			if user == "" {
				user = "(local)"
			}
			_, err := fmt.Fprintf(out, "%-19s  %-16s  %-8s  %-8s  %-6s  %-40s  %s\n",
				d.Time.Local().Format("2006-01-02 15:04:05"), user, decision, d.Role, d.Method, d.Path, d.Rule)
			return err
		}, nil
	case formatter.JSONFormatKey:
		return func(_ authz.Decision, line []byte) error {
			_, err := out.Write(append(line, '\n'))
			return err
		}, nil
	}
	if strings.HasPrefix(format, formatter.TableFormatKey) {
		return nil, fmt.Errorf("--format %q: give table, json or a template without table", format)
	}
	if err := output.Template(io.Discard, format, []authz.Decision{}); err != nil {
		return nil, fmt.Errorf("--format: %w", err)
	}
	return func(d authz.Decision, _ []byte) error {
		return output.Template(out, format, []authz.Decision{d})
	}, nil
}

// untilOrphaned is ctx, ended also when this process's parent (the docker
// CLI, which does not pass on a SIGTERM to its plugin) goes away: a
// follower never outlives the command that started it.
func untilOrphaned(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	parent := os.Getppid()
	go func() {
		defer cancel()
		for os.Getppid() == parent {
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return ctx
}
