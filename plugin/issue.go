package plugin

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
)

// issueOptions are the flags server issue and client issue share.
type issueOptions struct {
	ca         string
	out        string
	keyType    string
	days       int
	force      bool
	passphrase passphraseOptions
}

func (o *issueOptions) install(cmd *cobra.Command, e *env, defaultDays int) {
	f := cmd.Flags()
	f.StringVar(&o.ca, "ca", castore.DefaultName, "CA that signs the certificate")
	f.StringVarP(&o.out, "out", "o", "", "Directory to write the files to (created 0700 if missing)")
	f.StringVar(&o.keyType, "key-type", string(pki.DefaultKeyType), "Key type: "+keyTypeNames())
	f.IntVar(&o.days, "days", 0, fmt.Sprintf("Lifetime in days (default %d)", defaultDays))
	f.BoolVar(&o.force, "force", false, "Overwrite existing files in the output directory")
	f.StringVar(&o.passphrase.file, "passphrase-file", "", "File holding the CA key's passphrase, if it is encrypted")
	_ = cmd.MarkFlagRequired("out")
	_ = cmd.MarkFlagDirname("out")
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(e))
	_ = cmd.RegisterFlagCompletionFunc("key-type", completeKeyTypes)
}

// outFile is one file an issue command writes.
type outFile struct {
	name string
	data []byte
	perm os.FileMode
}

// writeOutDir writes files into dir as one unit: it refuses before writing
// anything if a file exists and force is off, and removes what it wrote if a
// later write fails.
func writeOutDir(dir string, files []outFile, force bool) error {
	if !force {
		paths := make([]string, len(files))
		for i, f := range files {
			paths[i] = filepath.Join(dir, f.name)
		}
		if err := fsutil.CheckAbsent(paths...); err != nil {
			return fmt.Errorf("%w: use --force to overwrite, or choose another --out", err)
		}
	}
	// A new directory is made private; an existing one (the current
	// directory, ~/.docker) keeps its mode: the key file itself is 0600.
	if err := os.MkdirAll(dir, fsutil.PrivateDir); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for i, f := range files {
		if err := fsutil.WriteFile(filepath.Join(dir, f.name), f.data, f.perm, force); err != nil {
			if !force {
				for _, done := range files[:i] {
					_ = os.Remove(filepath.Join(dir, done.name))
				}
			}
			return err
		}
	}
	return nil
}

// issueLeaf makes a key and a certificate for it from the named CA.
func issueLeaf(e *env, o issueOptions, req pki.IssueRequest) (*castore.CA, crypto.Signer, *x509.Certificate, error) {
	kt, err := pki.ParseKeyType(o.keyType)
	if err != nil {
		return nil, nil, nil, err
	}
	if req.Lifetime, err = lifetime(o.days); err != nil {
		return nil, nil, nil, err
	}
	stored, ca, err := e.loadCA(o.ca, o.passphrase)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := pki.GenerateKey(kt)
	if err != nil {
		return nil, nil, nil, err
	}
	req.PublicKey = key.Public()
	cert, err := ca.Issue(req)
	if err != nil {
		return nil, nil, nil, err
	}
	return stored, key, cert, nil
}

type serverIssueOptions struct {
	issueOptions
	hosts      []string
	sans       []string
	installDir string
	port       int
}

func newServerCommand(e *env) *cobra.Command {
	cmd := groupCommand("server", "Issue certificates for Docker engines (dockerd)")
	cmd.AddCommand(newServerIssueCommand(e), newServerRenewCommand(e))
	return cmd
}

func newServerIssueCommand(e *env) *cobra.Command {
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
			return runServerIssue(e, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	opts.install(cmd, e, int(pki.DefaultServerLifetime.Hours()/24))
	f := cmd.Flags()
	f.StringSliceVar(&opts.sans, "san", nil, "More DNS names or IP addresses (repeatable, comma-separated)")
	f.StringVar(&opts.installDir, "install-dir", "/etc/docker/tls", "Where the files will live on the engine's host (used in daemon.json and the flags)")
	f.IntVar(&opts.port, "port", 2376, "TCP port dockerd listens on for TLS (used in the printed flags)")
	return cmd
}

// daemonJSON is the TLS part of /etc/docker/daemon.json. It carries no
// "hosts" key on purpose: on systemd hosts dockerd already gets -H from its
// unit, and both together make dockerd refuse to start.
type daemonJSON struct {
	TLSVerify bool   `json:"tlsverify"`
	TLSCACert string `json:"tlscacert"`
	TLSCert   string `json:"tlscert"`
	TLSKey    string `json:"tlskey"`
}

func runServerIssue(e *env, opts serverIssueOptions) error {
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
		fmt.Fprintln(e.cli.Err(), "warning:", w)
	}
	stored, key, cert, err := issueLeaf(e, opts.issueOptions, pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans})
	if err != nil {
		return err
	}
	keyPEM, err := pki.EncodePrivateKey(key, nil)
	if err != nil {
		return err
	}
	dj := daemonJSON{
		TLSVerify: true,
		TLSCACert: path.Join(opts.installDir, "ca.pem"),
		TLSCert:   path.Join(opts.installDir, "server-cert.pem"),
		TLSKey:    path.Join(opts.installDir, "server-key.pem"),
	}
	djBytes, _ := json.MarshalIndent(dj, "", "  ")
	files := []outFile{
		{"ca.pem", pki.EncodeCertificate(stored.Cert), fsutil.PublicFile},
		{"server-cert.pem", pki.EncodeCertificate(cert), fsutil.PublicFile},
		{"server-key.pem", keyPEM, fsutil.PrivateFile},
		{"daemon.json", append(djBytes, '\n'), fsutil.PublicFile},
	}
	if err := writeOutDir(opts.out, files, opts.force); err != nil {
		return err
	}
	out := e.cli.Out()
	fmt.Fprintf(out, "Server certificate for %s from CA %q, valid until %s, written to %s\n",
		strings.Join(sans.Strings(), ", "), stored.Name, cert.NotAfter.Format("2006-01-02"), opts.out)
	fmt.Fprintf(out, "\nOn the engine's host, copy %s to %s (the key must stay 0600, owned by root), then either\n", opts.out, opts.installDir)
	fmt.Fprintf(out, "merge %s into /etc/docker/daemon.json and add -H tcp://0.0.0.0:%d to dockerd's systemd unit, or run:\n\n", filepath.Join(opts.out, "daemon.json"), opts.port)
	fmt.Fprintf(out, "  dockerd --tlsverify --tlscacert=%s --tlscert=%s --tlskey=%s -H unix:///var/run/docker.sock -H tcp://0.0.0.0:%d\n",
		dj.TLSCACert, dj.TLSCert, dj.TLSKey, opts.port)
	return nil
}

type clientIssueOptions struct {
	issueOptions
	name   string
	remote remoteOptions
}

func newClientCommand(e *env) *cobra.Command {
	cmd := groupCommand("client", "Issue certificates for docker clients")
	cmd.AddCommand(newClientIssueCommand(e))
	return cmd
}

func newClientIssueCommand(e *env) *cobra.Command {
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
  DOCKER_CERT_PATH=~/.docker/engine DOCKER_TLS_VERIFY=1 DOCKER_HOST=tcp://engine.example.com:2376 docker version`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = args[0]
			return runClientIssue(e, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	opts.install(cmd, e, int(pki.DefaultClientLifetime.Hours()/24))
	opts.remote.install(cmd.Flags())
	return cmd
}

func runClientIssue(e *env, opts clientIssueOptions) error {
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
	is, err := e.issueClient(context.Background(), clientSpec{ca: opts.ca, remote: opts.remote, keyType: opts.keyType, days: opts.days, name: name, passphrase: opts.passphrase})
	if err != nil {
		return err
	}
	keyPEM, err := pki.EncodePrivateKey(is.key, nil)
	if err != nil {
		return err
	}
	files := []outFile{
		{"ca.pem", pki.EncodeCertificate(is.caCert), fsutil.PublicFile},
		{"cert.pem", pki.EncodeCertificate(is.cert), fsutil.PublicFile},
		{"key.pem", keyPEM, fsutil.PrivateFile},
	}
	if err := writeOutDir(opts.out, files, opts.force); err != nil {
		return err
	}
	out := e.cli.Out()
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
