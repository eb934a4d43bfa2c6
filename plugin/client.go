package plugin

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/certdir"
	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
)

type clientIssueOptions struct {
	issueOptions
	name   string
	groups []string
	remote remoteOptions
}

func newClientCommand(a *app) *cobra.Command {
	cmd := groupCommand("client", "Issue certificates for docker clients")
	cmd.AddCommand(newClientIssueCommand(a))
	return cmd
}

func newClientIssueCommand(a *app) *cobra.Command {
	var opts clientIssueOptions
	cmd := &cobra.Command{
		Use:   "issue NAME --out DIR",
		Short: "Issue a client certificate and key (EKU clientAuth)",
		Long: `Issue a client certificate for NAME (its CN) from a CA, valid 90 days unless
--days says otherwise: dockerd checks no revocation list, so a short life
and renewal is how access ends.

DIR receives ca.pem, cert.pem and key.pem (0600): the layout of ~/.docker and
DOCKER_CERT_PATH, which the docker CLI reads with --tlsverify.`,
		Example: `  docker tls client issue alice --out ~/.docker/engine
  docker tls client issue ci-runner --group ci --days 30 --out ./ci-tls
  DOCKER_CERT_PATH=~/.docker/engine DOCKER_TLS_VERIFY=1 DOCKER_HOST=tcp://engine.example.com:2376 docker version`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = args[0]
			return runClientIssue(a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	opts.install(cmd, a, int(pki.DefaultClientLifetime.Hours()/24))
	opts.remote.install(cmd.Flags())
	cmd.Flags().StringArrayVar(&opts.groups, "group", nil, "Group of the client (the certificate's O); an engine's policy grants roles to groups (repeatable)")
	return cmd
}

func runClientIssue(a *app, opts clientIssueOptions) error {
	name := strings.TrimSpace(opts.name)
	if name == "" || strings.ContainsAny(name, "\n\r\t/\\") {
		return fmt.Errorf("client name %q: give a plain name such as alice or ci-runner", opts.name)
	}
	if !opts.force {
		// Refuse before a remote CA spends a token on files we cannot write.
		if err := fsutil.CheckAbsent(filepath.Join(opts.out, "ca.pem"), filepath.Join(opts.out, "cert.pem"), filepath.Join(opts.out, "key.pem")); err != nil {
			return fmt.Errorf("%w: use --force to overwrite, or choose another --out", err)
		}
	}
	is, err := a.issueClient(context.Background(), clientSpec{ca: opts.ca, remote: opts.remote, keyType: opts.keyType, days: opts.days, name: name, groups: opts.groups, passphrase: opts.passphrase, dest: "file " + absOr(opts.out)})
	if err != nil {
		return err
	}
	files, err := certdir.Client(is.caCert, is.cert, is.key)
	if err != nil {
		return err
	}
	if err := writeOut(opts.out, files, opts.force, "--out"); err != nil {
		return err
	}
	out := a.cli.Out()
	from := fmt.Sprintf("CA %q", is.caName)
	if opts.remote.set() {
		from = opts.remote.url
	}
	fmt.Fprintf(out, "Client certificate for %q from %s, valid until %s, written to %s\n",
		name, from, is.cert.NotAfter.Format("2006-01-02"), opts.out)
	abs, err := filepath.Abs(opts.out)
	if err != nil {
		abs = opts.out
	}
	fmt.Fprintf(out, "\nUse it with:\n  docker --tlsverify --tlscacert=%[1]s/ca.pem --tlscert=%[1]s/cert.pem --tlskey=%[1]s/key.pem -H tcp://HOST:2376 version\n", abs)
	return nil
}
