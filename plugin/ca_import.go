package plugin

import (
	"fmt"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/pki"
)

type caImportOptions struct {
	name       string
	certFile   string
	keyFile    string
	force      bool
	passphrase passphraseOptions
}

func newCAImportCommand(a *app) *cobra.Command {
	var opts caImportOptions
	cmd := &cobra.Command{
		Use:   "import NAME --cert ca.pem --key ca-key.pem",
		Short: "Adopt an existing CA (for example one made with openssl)",
		Long: `Adopt a CA certificate and its key made elsewhere, such as with the openssl
commands of Docker's documentation. Every format openssl writes is read:
PEM or DER, PKCS#1, SEC1, PKCS#8, encrypted PKCS#8 (genrsa -aes256 on
OpenSSL 3) and legacy encrypted PEM. An encrypted key stays encrypted with
the same passphrase when it goes to the file key store. The certificate must be a CA (BasicConstraints CA:TRUE),
valid now, and match the key. The original files are left alone.`,
		Example: `  docker tls ca import engine --cert ca.pem --key ca-key.pem --passphrase-file pass.txt`,
		Args:    cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = args[0]
			return runCAImport(a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.certFile, "cert", "", "CA certificate file (PEM or DER)")
	f.StringVar(&opts.keyFile, "key", "", "CA private key file")
	f.BoolVar(&opts.force, "force", false, "Replace an existing CA of the same name")
	opts.passphrase.install(f)
	_ = cmd.MarkFlagRequired("cert")
	_ = cmd.MarkFlagRequired("key")
	_ = cmd.MarkFlagFilename("cert", "pem", "crt", "cer", "der")
	_ = cmd.MarkFlagFilename("key", "pem", "key", "der")
	return cmd
}

func runCAImport(a *app, opts caImportOptions) error {
	if err := castore.CheckName(opts.name); err != nil {
		return err
	}
	certData, err := readPEMFile(opts.certFile)
	if err != nil {
		return fmt.Errorf("read CA certificate: %w", err)
	}
	certs, err := pki.ParseCertificates(certData)
	if err != nil {
		return fmt.Errorf("CA certificate %s: %w", opts.certFile, err)
	}
	if len(certs) > 1 {
		return fmt.Errorf("CA certificate %s holds %d certificates: give the CA's own certificate only", opts.certFile, len(certs))
	}
	cert := certs[0]
	if err := pki.CheckCACert(cert); err != nil {
		return fmt.Errorf("%s: %w", opts.certFile, err)
	}
	if err := pki.CheckValidity(cert, time.Now()); err != nil {
		return fmt.Errorf("%s: %w", opts.certFile, err)
	}
	key, storePass, err := a.readKeyFile(opts.keyFile, "CA key", opts.passphrase)
	if err != nil {
		return err
	}
	ca, err := pki.LoadCA(cert, key)
	if err != nil {
		return fmt.Errorf("%s and %s: %w", opts.certFile, opts.keyFile, err)
	}
	// In the file store, an encrypted key stays encrypted with the
	// passphrase it came with (storePass is nil for a plain key).
	kind, err := a.defaultKeystore()
	if err != nil {
		return err
	}
	stored, err := a.cas().Create(opts.name, ca, castore.CreateOptions{KeyStore: kind, Passphrase: storePass, Imported: true, Force: opts.force})
	if err != nil {
		return err
	}
	out := a.cli.Out()
	fmt.Fprintf(out, "Imported CA %q (%s, %s, valid until %s)\n", stored.Name, stored.Cert.Subject.String(), pki.DescribeKey(stored.Cert.PublicKey), stored.Cert.NotAfter.Format("2006-01-02"))
	fmt.Fprintf(out, "SHA-256 fingerprint: %s\n", pki.Fingerprint(stored.Cert))
	return nil
}
