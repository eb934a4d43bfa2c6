package plugin

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/certdir"
	"github.com/docker-tls/docker-tls/contexts"
)

type daemonConfigOptions struct {
	dir        string
	listen     string
	format     string
	installDir string
}

func newDaemonConfigCommand(a *app) *cobra.Command {
	var opts daemonConfigOptions
	cmd := &cobra.Command{
		Use:   "daemon-config --dir DIR [--listen tcp://0.0.0.0:2376] [--format daemon.json|systemd|flags]",
		Short: "Print dockerd's TLS configuration for a server certificate directory",
		Long: `Print how to start dockerd with the files of docker tls server issue:

  daemon.json  the tlsverify/tlscacert/tlscert/tlskey keys for /etc/docker/daemon.json
  systemd      a drop-in for /etc/systemd/system/docker.service.d/ with the empty
               ExecStart= line that clears the packaged one, and -H for --listen
  flags        the dockerd command line

The listening address goes in the systemd drop-in (-H), never as "hosts" in
daemon.json: on systemd hosts dockerd already gets -H from its unit, and
both together make it refuse to start.`,
		Example: `  docker tls daemon-config --dir ./engine-tls > daemon.json
  docker tls daemon-config --dir ./engine-tls --format systemd | sudo tee /etc/systemd/system/docker.service.d/tls.conf`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDaemonConfig(a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.dir, "dir", "", "Directory from docker tls server issue (ca.pem, server-cert.pem, server-key.pem)")
	f.StringVar(&opts.listen, "listen", "tcp://0.0.0.0:2376", "Address dockerd listens on for TLS")
	f.StringVar(&opts.format, "format", "daemon.json", "daemon.json, systemd or flags")
	f.StringVar(&opts.installDir, "install-dir", "", "Where the files live on the engine's host (default: --dir, made absolute)")
	_ = cmd.MarkFlagRequired("dir")
	_ = cmd.MarkFlagDirname("dir")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"daemon.json", "systemd", "flags"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runDaemonConfig(a *app, opts daemonConfigOptions) error {
	// The files must be there and fit together.
	sd, err := certdir.ReadServer(opts.dir)
	if err != nil {
		return fmt.Errorf("--dir %w", err)
	}
	if _, err := sd.Check(time.Now()); err != nil {
		return err
	}
	listen, warning, err := contexts.ParseHost(opts.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if warning != "" {
		fmt.Fprintln(a.cli.Err(), "warning:", warning)
	}
	dir := opts.installDir
	if dir == "" {
		if dir, err = filepath.Abs(opts.dir); err != nil {
			return err
		}
	}
	dj := certdir.NewDaemonJSON(dir)
	out := a.cli.Out()
	switch opts.format {
	case "daemon.json":
		data, _ := json.MarshalIndent(dj, "", "  ")
		fmt.Fprintln(out, string(data))
		fmt.Fprintf(a.cli.Err(), "note: add the listening address with -H %s in dockerd's systemd drop-in (--format systemd), not as \"hosts\" here: with systemd's -H, a \"hosts\" key makes dockerd refuse to start\n", listen)
	case "systemd":
		fmt.Fprintf(out, "# /etc/systemd/system/docker.service.d/docker-tls.conf, then: systemctl daemon-reload && systemctl restart docker\n")
		fmt.Fprintf(out, "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// -H %s --tlsverify --tlscacert=%s --tlscert=%s --tlskey=%s\n", listen, dj.TLSCACert, dj.TLSCert, dj.TLSKey)
		fmt.Fprintln(a.cli.Err(), "note: the empty ExecStart= line clears the packaged one; keep \"hosts\" and the tls keys out of daemon.json, or dockerd refuses to start")
	case "flags":
		fmt.Fprintf(out, "dockerd -H %s --tlsverify --tlscacert=%s --tlscert=%s --tlskey=%s\n", listen, dj.TLSCACert, dj.TLSCert, dj.TLSKey)
	default:
		return fmt.Errorf("--format %q: use daemon.json, systemd or flags", opts.format)
	}
	return nil
}
