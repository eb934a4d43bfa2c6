package plugin

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/certdir"
	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/probe"
)

func newServerCommand(a *app) *cobra.Command {
	cmd := groupCommand("server", "Issue certificates for Docker engines (dockerd)")
	cmd.AddCommand(newServerIssueCommand(a), newServerRenewCommand(a))
	return cmd
}

type serverIssueOptions struct {
	issueOptions
	hosts      []string
	sans       []string
	installDir string
	port       int
}

func newServerIssueCommand(a *app) *cobra.Command {
	var opts serverIssueOptions
	cmd := &cobra.Command{
		Use:   "issue HOST [HOST...] --out DIR",
		Short: "Issue a server certificate and key for dockerd --tlsverify",
		Long: `Issue a server certificate for a Docker engine, valid for every HOST and
--san given: DNS names (engine.example.com, *.example.com) and IP addresses
(192.0.2.10, ::1), bare or as DNS:x / IP:x, comma-separated or repeated.
Clients check only these names, never the CN, so list every name and address
the engine is reached by.

DIR receives ca.pem, server-cert.pem, server-key.pem (0600) and a
daemon.json snippet whose paths point at --install-dir, where the files go on
the engine's host. The dockerd flags are printed.`,
		Example: `  docker tls server issue engine.example.com 192.0.2.10 --out ./engine-tls
  docker tls server issue localhost 127.0.0.1 --san ::1 --ca prod --days 365 --out ./local`,
		Args: cli.RequiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.hosts = args
			return runServerIssue(a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	opts.install(cmd, a, int(pki.DefaultServerLifetime.Hours()/24))
	f := cmd.Flags()
	f.StringSliceVar(&opts.sans, "san", nil, "More DNS names or IP addresses (repeatable, comma-separated)")
	f.StringVar(&opts.installDir, "install-dir", "/etc/docker/tls", "Where the files will live on the engine's host (used in daemon.json and the flags)")
	f.IntVar(&opts.port, "port", 2376, "TCP port dockerd listens on for TLS (used in the printed flags)")
	return cmd
}

func runServerIssue(a *app, opts serverIssueOptions) error {
	sans, warnings, err := pki.ParseSANs(append(append([]string{}, opts.hosts...), opts.sans...))
	if err != nil {
		return err
	}
	if opts.port < 1 || opts.port > 65535 {
		return fmt.Errorf("--port %d is not a TCP port", opts.port)
	}
	if !path.IsAbs(opts.installDir) && !filepath.IsAbs(opts.installDir) {
		return fmt.Errorf("--install-dir %q must be an absolute path on the engine's host", opts.installDir)
	}
	for _, w := range warnings {
		fmt.Fprintln(a.cli.Err(), "warning:", w)
	}
	if !opts.force {
		// Refused before a certificate is issued and recorded.
		if err := fsutil.CheckAbsent(certdir.ServerPaths(opts.out)...); err != nil {
			return fmt.Errorf("%w: use --force to overwrite, or choose another --out", err)
		}
	}
	stored, key, cert, err := issueLeaf(a, opts.issueOptions, pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans}, "file "+absOr(opts.out))
	if err != nil {
		return err
	}
	files, err := certdir.Server(stored.Cert, cert, key, opts.installDir)
	if err != nil {
		return err
	}
	if err := writeOut(opts.out, files, opts.force, "--out"); err != nil {
		return err
	}
	dj := certdir.NewDaemonJSON(opts.installDir)
	out := a.cli.Out()
	fmt.Fprintf(out, "Server certificate for %s from CA %q, valid until %s, written to %s\n",
		strings.Join(sans.Strings(), ", "), stored.Name, cert.NotAfter.Format("2006-01-02"), opts.out)
	fmt.Fprintf(out, "\nOn the engine's host, copy %s to %s (the key must stay 0600, owned by root), then either\n", opts.out, opts.installDir)
	fmt.Fprintf(out, "merge %s into /etc/docker/daemon.json and add -H tcp://0.0.0.0:%d to dockerd's systemd unit, or run:\n\n", filepath.Join(opts.out, "daemon.json"), opts.port)
	fmt.Fprintf(out, "  dockerd --tlsverify --tlscacert=%s --tlscert=%s --tlskey=%s -H unix:///var/run/docker.sock -H tcp://0.0.0.0:%d\n",
		dj.TLSCACert, dj.TLSCert, dj.TLSKey, opts.port)
	return nil
}

type serverRenewOptions struct {
	dir        string
	ca         string
	sans       []string
	rekey      bool
	days       int
	context    string
	passphrase passphraseOptions
}

func newServerRenewCommand(a *app) *cobra.Command {
	var opts serverRenewOptions
	cmd := &cobra.Command{
		Use:   "renew DIR",
		Short: "Re-issue a server certificate directory in place, keeping its names",
		Long: `Re-issue the server certificate in DIR (from docker tls server issue) from the
same CA, with the same SANs (or --san to change them) and key (or --rekey).
The new files are written next to the old ones and then renamed into place.

dockerd reads its TLS files only when it starts: copy DIR to the engine's
host and restart dockerd. With --context NAME the engine is asked whether
live-restore is on; without it a restart stops the running containers.`,
		Example: `  docker tls server renew ./engine-tls
  docker tls server renew ./engine-tls --san engine.example.com,192.0.2.10 --context prod`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.dir = args[0]
			return runServerRenew(cmd.Context(), a, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.ca, "ca", castore.DefaultName, "CA that issued the certificate")
	f.StringSliceVar(&opts.sans, "san", nil, "Replace the names (default: keep the current ones)")
	f.BoolVar(&opts.rekey, "rekey", false, "Make a new key too")
	addDaysFlag(f, &opts.days, "the old certificate's")
	f.StringVar(&opts.context, "context", "", "A context for this engine, to ask it whether live-restore is on")
	opts.passphrase.install(f)
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(a))
	_ = cmd.RegisterFlagCompletionFunc("context", completeContextNames(a, false))
	return cmd
}

func runServerRenew(ctx context.Context, a *app, opts serverRenewOptions) error {
	if _, err := lifetime(opts.days); err != nil {
		return err
	}
	sd, err := certdir.ReadServer(opts.dir)
	if err != nil {
		return err
	}
	stored, ca, err := a.loadCA(opts.ca, opts.passphrase)
	if err != nil {
		return err
	}
	r := certdir.ServerRenewal{Rekey: opts.rekey, Lifetime: time.Duration(opts.days) * 24 * time.Hour}
	if len(opts.sans) > 0 {
		var warnings []pki.SANWarning
		if r.SANs, warnings, err = pki.ParseSANs(opts.sans); err != nil {
			return err
		}
		for _, w := range warnings {
			fmt.Fprintln(a.cli.Err(), "warning:", w)
		}
	}
	cert, err := sd.Renew(stored.Cert, ca, r)
	if errors.Is(err, certdir.ErrOtherCA) {
		return fmt.Errorf("%s was not issued by CA %q: give the right --ca", filepath.Join(opts.dir, certdir.ServerCertFile), opts.ca)
	}
	if err != nil {
		return err
	}
	sans := pki.CertSANs(cert)
	out := a.cli.Out()
	fmt.Fprintf(out, "Renewed %s: %s, serial %x, valid until %s\n", filepath.Join(opts.dir, "server-cert.pem"), strings.Join(sans.Strings(), ", "), cert.SerialNumber, cert.NotAfter.Format("2006-01-02"))
	fmt.Fprintln(out, "dockerd reads its certificate only at start: copy the directory to the engine's host and restart dockerd (systemctl restart docker).")
	if opts.context == "" {
		fmt.Fprintln(out, "Without live-restore a restart stops running containers; --context NAME asks the engine whether it is on.")
		return nil
	}
	return a.printLiveRestore(ctx, opts.context)
}

// printLiveRestore asks the engine of a context whether a restart of
// dockerd keeps its containers running, and says so.
func (a *app) printLiveRestore(ctx context.Context, context string) error {
	t, err := a.contextTarget(context)
	if err != nil {
		return err
	}
	out := a.cli.Out()
	on, err := probe.LiveRestore(ctx, t, 10*time.Second)
	switch {
	case err != nil:
		fmt.Fprintf(out, "Could not ask the engine about live-restore (%v): without it a restart stops running containers.\n", err)
	case on:
		fmt.Fprintln(out, "live-restore is on: containers keep running while dockerd restarts.")
	default:
		fmt.Fprintln(out, "live-restore is OFF: restarting dockerd stops every running container. Plan a window, or set \"live-restore\": true in daemon.json first.")
	}
	return nil
}
