package plugin

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
)

type caCRLOptions struct {
	name       string
	out        string
	format     string
	force      bool
	db         dbOptions
	passphrase passphraseOptions
}

func newCACRLCommand(a *app) *cobra.Command {
	var opts caCRLOptions
	cmd := &cobra.Command{
		Use:   "crl NAME [--out FILE] [--format pem|der]",
		Short: "Print the CA's certificate revocation list (X.509 CRL)",
		Long: `Print the CA's certificate revocation list: every certificate revoked with
docker tls ca revoke that has not expired, signed by the CA (X.509 v2 CRL,
RFC 5280), valid for 24 hours. The list is kept in the CA's database with
its number, which only grows; it is signed again after a revocation or
once half its validity has passed. docker tls ca serve answers the same
list at GET /crl.

Check a certificate against it with openssl:
  openssl verify -crl_check -CAfile ca.pem -CRLfile crl.pem cert.pem`,
		Example: `  docker tls ca crl team
  docker tls ca crl team --out crl.pem
  docker tls ca crl team --format der --out crl.der`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = args[0]
			return runCACRL(cmd, a, opts)
		},
		ValidArgsFunction: completeCANames(a),
	}
	f := cmd.Flags()
	f.StringVarP(&opts.out, "out", "o", "", "Write the CRL to FILE instead of stdout")
	f.StringVar(&opts.format, "format", "pem", "pem or der (der needs --out)")
	f.BoolVar(&opts.force, "force", false, "Overwrite --out if it exists")
	opts.db.install(f)
	opts.passphrase.install(f)
	_ = cmd.MarkFlagFilename("out", "pem", "crl", "der")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"pem", "der"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runCACRL(cmd *cobra.Command, a *app, opts caCRLOptions) error {
	if err := checkCACRL(opts); err != nil {
		return err
	}
	stored, ca, err := a.loadCA(opts.name, opts.passphrase)
	if err != nil {
		return err
	}
	db, err := opts.db.open(cmd.Context(), a, stored)
	if err != nil {
		return err
	}
	defer db.Close()
	der, err := db.CRL(cmd.Context(), remoteca.FingerprintHex(ca.Cert.Raw), time.Now(), ca.CRL)
	if err != nil {
		return err
	}
	data := der
	if opts.format == "pem" {
		data = pki.EncodeCRL(der)
	}
	if opts.out == "" {
		_, err := a.cli.Out().Write(data)
		return err
	}
	if err := fsutil.WriteFile(opts.out, data, fsutil.PublicFile, opts.force); err != nil {
		return err
	}
	crl, err := pki.CheckCRL(der, []*x509.Certificate{ca.Cert}, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(a.cli.Err(), "Wrote the CRL of CA %q to %s: number %v, %d revoked, next update %s\n",
		stored.Name, opts.out, crl.Number, len(crl.RevokedCertificateEntries), crl.NextUpdate.Local().Format(time.RFC3339))
	return nil
}

// checkCACRL refuses flags that do not go together, and an --out that is
// there without --force, before the CA is opened.
func checkCACRL(opts caCRLOptions) error {
	switch {
	case opts.format != "pem" && opts.format != "der":
		return fmt.Errorf("--format %q: use pem or der", opts.format)
	case opts.format == "der" && opts.out == "":
		return errors.New("--format der writes binary: give --out FILE")
	case opts.out == "" && opts.force:
		return errors.New("--force goes with --out")
	case opts.out == "" || opts.force:
		return nil
	}
	if err := fsutil.CheckAbsent(opts.out); err != nil {
		return fmt.Errorf("%w: use --force to overwrite, or choose another --out", err)
	}
	return nil
}
