package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/authz"
	"github.com/docker-tls/docker-tls/policy"
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
	logger := log.New(a.cli.Err(), "docker-tls authz: ", log.LstdFlags)
	cfgFile := &authz.ConfigFile{Path: opts.config, Rejected: func(err error) {
		logger.Printf("refused a changed policy, the last good one stays in force: %v", err)
	}}
	// A policy that cannot be read at start is not served: dockerd would
	// refuse every call; better that the unit fails and says why.
	if _, err := cfgFile.Current(); err != nil {
		return fmt.Errorf("the policy %s: %w", opts.config, err)
	}
	audit := &authz.AuditLog{Path: opts.audit, MaxBytes: opts.auditMax}
	defer audit.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	crls := &authz.CRLFile{Path: opts.crl, Rejected: func(err error) {
		logger.Printf("refused a revocation list, the last good one stays in force: %v", err)
	}, CAPath: func() string {
		if cfg, err := cfgFile.Current(); err == nil {
			return cfg.CAs
		}
		return ""
	}}
	puller := &authz.Puller{Config: cfgFile, CRLPath: opts.crl, LockPath: opts.crlLock, Logf: logger.Printf}
	go puller.Run(ctx)
	p := &authz.Plugin{
		Decider: &authz.Decider{Rules: policy.NewRules(), Revoked: crls.Revoked},
		CRLs:    crls,
		Config:  cfgFile,
		Audit: func(d authz.Decision) {
			if err := audit.Write(d); err != nil {
				logger.Printf("audit: %v", err)
			}
		},
	}
	l, err := pluginListener(opts.socket)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	logger.Printf("serving %s on %s", opts.config, opts.socket)
	err = authz.Handler(p, time.Now()).Serve(l)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// runAuthzStatus prints the running plugin's status; the engine's host
// runs it before dockerd is told to use the plugin.
func runAuthzStatus(ctx context.Context, a *app, opts authzPluginOptions) error {
	deadline := time.Now().Add(opts.wait)
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := authz.QueryStatus(qctx, opts.socket)
		cancel()
		if err == nil {
			enc := json.NewEncoder(a.cli.Out())
			return enc.Encode(st)
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the plugin on %s does not answer: %w", opts.socket, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	changed, held, err := authz.InstallCRL(opts.crl, cfg.CAs, opts.crlLock, in)
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

// pluginListener is the socket systemd passed (docker-tls-authz.socket:
// calls wait on it while the plugin restarts), or, run by hand, one of its
// own on path.
func pluginListener(path string) (net.Listener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("the sockets systemd passed: %w", err)
	}
	for i, l := range ls {
		if l != nil {
			for _, other := range ls[i+1:] {
				if other != nil {
					other.Close()
				}
			}
			return l, nil
		}
	}
	return listenUnix(path)
}

// listenUnix listens on path, replacing a socket a previous run left (and
// nothing else).
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket: move it away", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
