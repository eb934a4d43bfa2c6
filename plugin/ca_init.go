package plugin

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/certdir"
	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
)

type caInitOptions struct {
	name         string
	commonName   string
	organization string
	keyType      string
	days         int
	force        bool
	export       string
	passphrase   passphraseOptions
}

func newCAInitCommand(a *app) *cobra.Command {
	var opts caInitOptions
	cmd := &cobra.Command{
		Use:   "init [NAME]",
		Short: "Create a CA (named \"default\" when no name is given)",
		Long: `Create a self-signed CA to issue Docker server and client certificates.

The CA certificate is valid for 10 years (--days), has BasicConstraints
CA:TRUE with path length 0 and KeyUsage keyCertSign+cRLSign. Its key is
ECDSA P-256 unless --key-type says otherwise, and goes into the key store:
the OS keyring by default, or with --keystore file a 0600 file under
$DOCKER_CONFIG/tls/keys, encrypted when a passphrase is given with
--passphrase-file or ` + PassphraseEnv + `.

--export DIR also writes ca.pem and a passphrase-encrypted ca-key.pem
(PKCS#8, readable by openssl) to carry the CA to another machine.`,
		Example: `  docker tls ca init
  docker tls ca init prod --cn "Prod Docker CA" --key-type rsa-4096
  docker tls ca init team --keystore file --passphrase-file ~/.config/ca-pass
  docker tls ca init engine --export ./engine-ca --passphrase-file pass.txt`,
		Args: cli.RequiresMaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = castore.DefaultName
			if len(args) == 1 {
				opts.name = args[0]
			}
			return runCAInit(a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.commonName, "cn", "", `Common name of the CA (default "docker-tls CA NAME")`)
	f.StringVar(&opts.organization, "org", "", "Organization of the CA")
	f.StringVar(&opts.keyType, "key-type", string(pki.DefaultKeyType), "Key type: "+keyTypeNames())
	addDaysFlag(f, &opts.days, "3650")
	f.BoolVar(&opts.force, "force", false, "Replace an existing CA of the same name (its key is deleted)")
	opts.passphrase.install(f)
	f.StringVar(&opts.export, "export", "", "Also write ca.pem and an encrypted ca-key.pem to this directory")
	_ = cmd.RegisterFlagCompletionFunc("key-type", completeKeyTypes)
	_ = cmd.MarkFlagDirname("export")
	return cmd
}

func runCAInit(a *app, opts caInitOptions) error {
	kt, life, pass, err := a.checkCAInit(opts)
	if err != nil {
		return err
	}
	kind, err := a.defaultKeystore()
	if err != nil {
		return err
	}
	store := a.cas()
	if !opts.force {
		// Refuse before the (possibly slow) key generation.
		if _, err := store.Get(opts.name); err == nil {
			return fmt.Errorf("CA %q %w", opts.name, castore.ErrExists)
		}
	}
	key, err := pki.GenerateKey(kt)
	if err != nil {
		return err
	}
	cn := opts.commonName
	if cn == "" {
		cn = "docker-tls CA " + opts.name
	}
	ca, err := pki.NewCA(key, pki.CAOptions{CommonName: cn, Organization: opts.organization, Lifetime: life})
	if err != nil {
		return err
	}
	var exportKey []byte
	if opts.export != "" {
		if exportKey, err = pki.EncodePrivateKey(key, pass); err != nil {
			return err
		}
	}
	stored, err := store.Create(opts.name, ca, castore.CreateOptions{KeyStore: kind, Passphrase: pass, Force: opts.force})
	if err != nil {
		return err
	}
	out := a.cli.Out()
	fmt.Fprintf(out, "Created CA %q (%s, valid until %s), key in the %s key store\n", stored.Name, pki.DescribeKey(stored.Cert.PublicKey), stored.Cert.NotAfter.Format("2006-01-02"), stored.KeyStore)
	fmt.Fprintf(out, "SHA-256 fingerprint: %s\n", pki.Fingerprint(stored.Cert))
	fmt.Fprintf(out, "Certificate: %s\n", stored.CertPath)
	if opts.export == "" {
		return nil
	}
	err = writeOut(opts.export, []certdir.File{
		{Name: certdir.CAFile, Data: pki.EncodeCertificate(stored.Cert), Perm: fsutil.PublicFile},
		{Name: "ca-key.pem", Data: exportKey, Perm: fsutil.PrivateFile},
	}, opts.force, "--export")
	if err != nil {
		return fmt.Errorf("CA %q was created, but the export failed: %w", stored.Name, err)
	}
	fmt.Fprintf(out, "Exported ca.pem and the encrypted ca-key.pem to %s\n", opts.export)
	return nil
}

// checkCAInit reads ca init's flags, and the passphrase (asking for one
// when --export needs it), refusing bad ones before anything is made.
func (a *app) checkCAInit(opts caInitOptions) (kt pki.KeyType, life time.Duration, pass []byte, err error) {
	if err := castore.CheckName(opts.name); err != nil {
		return "", 0, nil, err
	}
	if kt, err = pki.ParseKeyType(opts.keyType); err != nil {
		return "", 0, nil, err
	}
	if life, err = lifetime(opts.days); err != nil {
		return "", 0, nil, err
	}
	if pass, err = opts.passphrase.read(); err != nil {
		return "", 0, nil, err
	}
	if opts.export == "" {
		return kt, life, pass, nil
	}
	exportFiles := []string{filepath.Join(opts.export, "ca.pem"), filepath.Join(opts.export, "ca-key.pem")}
	if err := fsutil.CheckAbsent(exportFiles...); err != nil && !opts.force {
		return "", 0, nil, fmt.Errorf("--export: %w: use --force or another directory", err)
	}
	if pass == nil {
		if pass, err = a.promptNew("the exported CA key"); err != nil {
			return "", 0, nil, err
		}
	}
	return kt, life, pass, nil
}
