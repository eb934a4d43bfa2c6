package plugin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"
)

type importOptions struct {
	name            string
	host            string
	description     string
	dir             string
	caFile          string
	certFile        string
	keyFile         string
	force           bool
	removeOriginals bool
	passphrase      passphraseOptions
}

func newImportCommand(a *app) *cobra.Command {
	var opts importOptions
	cmd := &cobra.Command{
		Use:   "import NAME --host tcp://HOST:2376 (--dir DIR | --ca FILE --cert FILE --key FILE)",
		Short: "Adopt client certificates made by hand as a Docker context",
		Long: `Adopt ca.pem, cert.pem and key.pem made elsewhere (for example with the
openssl commands of Docker's documentation, or copied from the engine's
host) as a Docker context. --dir reads the ~/.docker / DOCKER_CERT_PATH
layout. The certificate must chain to the CA, carry clientAuth and be valid
now, and the key must match it. The key moves into the key store; the
original files are left alone unless --remove-originals.`,
		Example: `  docker tls import prod --host tcp://engine.example.com:2376 --dir ~/.docker
  docker tls import lab --host tcp://192.0.2.10:2376 --ca ca-public.pem --cert client-certificate.pem --key client-key.pem`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = args[0]
			return runImport(a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVarP(&opts.host, "host", "H", "", "Engine endpoint, tcp://HOST:PORT (port 2376 if omitted)")
	f.StringVar(&opts.description, "description", "", "Description of the context")
	f.StringVar(&opts.dir, "dir", "", "Directory with ca.pem, cert.pem and key.pem")
	f.StringVar(&opts.caFile, "ca", "", "CA certificate file")
	f.StringVar(&opts.certFile, "cert", "", "Client certificate file")
	f.StringVar(&opts.keyFile, "key", "", "Client key file")
	f.BoolVar(&opts.force, "force", false, "Replace an existing context of the same name")
	f.BoolVar(&opts.removeOriginals, "remove-originals", false, "Delete the original key file once the key is in the key store")
	opts.passphrase.install(f)
	_ = cmd.MarkFlagRequired("host")
	_ = cmd.MarkFlagDirname("dir")
	return cmd
}

func runImport(a *app, opts importOptions) error {
	host, err := a.preflight(opts.name, opts.host, opts.force)
	if err != nil {
		return err
	}
	files, err := importFiles(opts)
	if err != nil {
		return err
	}
	if err := a.loadClientFiles(&files, opts.passphrase); err != nil {
		return err
	}
	c, err := a.createContext(adoption{
		name: opts.name, host: host, description: opts.description,
		caCert: files.caCert, cert: files.leaf, key: files.signer, imported: true, force: opts.force,
	})
	if err != nil {
		return err
	}
	a.printCreated(c)
	if opts.removeOriginals {
		if err := os.Remove(files.key); err != nil {
			return fmt.Errorf("the context was created, but removing %s failed: %w", files.key, err)
		}
		fmt.Fprintf(a.cli.Out(), "Removed %s: the key now lives only in the %s key store (and the context's copy)\n", files.key, c.TLS.KeyStore)
	}
	return nil
}

// importFiles are the files import reads: those of --dir, or --ca, --cert
// and --key.
func importFiles(opts importOptions) (clientFiles, error) {
	named := opts.caFile != "" || opts.certFile != "" || opts.keyFile != ""
	switch {
	case opts.dir != "" && named:
		return clientFiles{}, errors.New("give either --dir or --ca, --cert and --key, not both")
	case opts.dir != "":
		return clientFiles{ca: filepath.Join(opts.dir, "ca.pem"), cert: filepath.Join(opts.dir, "cert.pem"), key: filepath.Join(opts.dir, "key.pem")}, nil
	case opts.caFile == "" || opts.certFile == "" || opts.keyFile == "":
		return clientFiles{}, errors.New("give --dir DIR, or all of --ca, --cert and --key")
	}
	return clientFiles{ca: opts.caFile, cert: opts.certFile, key: opts.keyFile}, nil
}
