package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/authz"
)

type authzPluginOptions struct {
	config   string
	audit    string
	socket   string
	auditMax int64
	// status asks a running plugin what it enforces, for up to wait.
	status bool
	wait   time.Duration
	// consulted asks whether dockerd on dockerSocket consults the plugin.
	consulted    bool
	dockerSocket string
	// crl holds the revocation lists; installCRL takes one on stdin.
	crl, crlLock string
	installCRL   bool
	// readAudit prints the audit trail's records since, of user, refused
	// only, and follows it.
	readAudit   bool
	since, user string
	denied      bool
	follow      bool
	untilEOF    bool
}

// newAuthzPluginCommand is the engine side of an engine's policy: the
// authorization plugin dockerd asks before every call. It runs on the
// engine's host, not on a laptop, so it is hidden from help.
func newAuthzPluginCommand(a *app) *cobra.Command {
	var opts authzPluginOptions
	cmd := &cobra.Command{
		Use:    "authz-plugin [--config FILE] [--socket PATH] [--audit FILE] | --status | --consulted",
		Short:  "Serve an engine's policy to dockerd as its authorization plugin (runs on the engine's host)",
		Hidden: true,
		Long: `Serve the engine's policy to dockerd as its authorization plugin docker-tls.
Started by systemd's docker-tls-authz.socket it takes the socket from systemd
(so calls wait on the socket while it restarts); run by hand it listens on
--socket itself. --status asks the running plugin what it enforces;
--consulted whether dockerd asks it (one probe call to dockerd).`,
		Example: `  docker-tls authz-plugin --config /etc/docker-tls/policy.json
  docker-tls authz-plugin --status --wait 10s`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.status {
				return runAuthzStatus(cmd.Context(), a, opts)
			}
			if opts.consulted {
				return runAuthzConsulted(cmd.Context(), a, opts)
			}
			if opts.installCRL {
				return runAuthzInstallCRL(a, opts)
			}
			if opts.readAudit {
				return runAuthzReadAudit(cmd.Context(), a, opts)
			}
			return runAuthzPlugin(cmd.Context(), a, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.config, "config", "/etc/docker-tls/policy.json", "The engine's policy")
	f.StringVar(&opts.socket, "socket", "/run/docker/plugins/docker-tls.sock", "Where dockerd finds the plugin (its name is the file's)")
	f.StringVar(&opts.audit, "audit", "/var/log/docker-tls/audit.log", "Audit trail: one JSON line per decision")
	f.Int64Var(&opts.auditMax, "audit-max", 64<<20, "Move the audit trail to FILE.1 past this many bytes")
	f.BoolVar(&opts.status, "status", false, "Print what the running plugin enforces (JSON) and exit")
	f.DurationVar(&opts.wait, "wait", 0, "With --status: keep asking for this long while the plugin does not answer")
	f.BoolVar(&opts.consulted, "consulted", false, "Print yes when dockerd consults the running plugin, no when it does not, and exit")
	f.StringVar(&opts.dockerSocket, "docker-socket", "/run/docker.sock", "With --consulted: dockerd's socket")
	f.StringVar(&opts.crl, "crl", "/etc/docker-tls/crl.pem", "The revocation lists in force (PEM), one per CA the engine trusts")
	f.StringVar(&opts.crlLock, "crl-lock", "/run/docker-tls/crl.lock", "Lock taken while the revocation lists change")
	f.BoolVar(&opts.installCRL, "install-crl", false, "Take the CRL on stdin (signed by one of the engine's CAs, not older than the one held) and exit")
	f.BoolVar(&opts.readAudit, "read-audit", false, "Print the audit trail's records (JSON lines), oldest first, and exit")
	f.StringVar(&opts.since, "since", "", "With --read-audit: records from this time on (RFC 3339)")
	f.StringVar(&opts.user, "user", "", "With --read-audit: this user's records only")
	f.BoolVar(&opts.denied, "denied", false, "With --read-audit: refusals only")
	f.BoolVar(&opts.follow, "follow", false, "With --read-audit: then wait for new records")
	f.BoolVar(&opts.untilEOF, "until-stdin-closes", false, "With --follow: stop when stdin closes (the laptop's end of ssh went away)")
	return cmd
}

func runAuthzPlugin(ctx context.Context, a *app, opts authzPluginOptions) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := log.New(a.cli.Err(), "docker-tls authz: ", log.LstdFlags)
	return authz.Service{Config: opts.config, Socket: opts.socket, Audit: opts.audit, AuditMax: opts.auditMax,
		CRL: opts.crl, CRLLock: opts.crlLock, Logf: logger.Printf}.Run(ctx)
}

// runAuthzStatus prints the running plugin's status; the engine's host
// runs it before dockerd is told to use the plugin.
func runAuthzStatus(ctx context.Context, a *app, opts authzPluginOptions) error {
	st, err := authz.WaitStatus(ctx, opts.socket, opts.wait)
	if err != nil {
		return err
	}
	return json.NewEncoder(a.cli.Out()).Encode(st)
}

// runAuthzConsulted makes one probe call to dockerd and prints whether the
// plugin saw it.
func runAuthzConsulted(ctx context.Context, a *app, opts authzPluginOptions) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ok, err := authz.Consulted(ctx, opts.dockerSocket, opts.socket)
	if err != nil {
		return err
	}
	answer := "no"
	if ok {
		answer = "yes"
	}
	_, err = fmt.Fprintln(a.cli.Out(), answer)
	return err
}

// runAuthzInstallCRL takes a pushed revocation list (docker tls ca revoke
// sends it over SSH) and prints what is held.
func runAuthzInstallCRL(a *app, opts authzPluginOptions) error {
	cfg, err := authz.ReadConfig(opts.config)
	if err != nil {
		return fmt.Errorf("the policy %s: %w", opts.config, err)
	}
	if cfg.CAs == "" {
		return fmt.Errorf("the policy %s names no CAs to check revocation lists against: run docker tls engine policy set again", opts.config)
	}
	in, err := io.ReadAll(io.LimitReader(a.cli.In(), 64<<20))
	if err != nil {
		return err
	}
	changed, held, err := authz.TakePushedCRL(opts.crl, cfg.CAs, opts.crlLock, opts.socket, in)
	if err != nil {
		return err
	}
	return json.NewEncoder(a.cli.Out()).Encode(struct {
		Changed bool            `json:"changed"`
		CRLs    []authz.CRLInfo `json:"crls"`
	}{changed, held})
}

// runAuthzReadAudit prints the audit trail for docker tls engine audit.
func runAuthzReadAudit(ctx context.Context, a *app, opts authzPluginOptions) error {
	f := authz.AuditFilter{User: opts.user, Denied: opts.denied}
	if opts.since != "" {
		t, err := time.Parse(time.RFC3339Nano, opts.since)
		if err != nil {
			return fmt.Errorf("--since %q: give an RFC 3339 time", opts.since)
		}
		f.Since = t
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()
	if opts.untilEOF {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			_, _ = io.Copy(io.Discard, a.cli.In())
			cancel()
		}()
	}
	return authz.ReadAudit(ctx, opts.audit, f, opts.follow, a.cli.Out())
}
