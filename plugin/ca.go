package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command/formatter"
	flagsHelper "github.com/docker/cli/cli/flags"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
)

func newCACommand(e *env) *cobra.Command {
	cmd := groupCommand("ca", "Create, import and list certificate authorities")
	cmd.AddCommand(newCAInitCommand(e), newCAImportCommand(e), newCAListCommand(e), newCAInspectCommand(e),
		newCAServeCommand(e), newCATokenCommand(e), newCATokensCommand(e), newCARevokeTokenCommand(e), newCAIssuedCommand(e))
	return cmd
}

// completeCANames completes the names of stored CAs.
func completeCANames(e *env) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		cas, _, err := e.cas().List()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, c := range cas {
			names = append(names, c.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

func completeKeyTypes(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	var names []string
	for _, t := range pki.KeyTypes() {
		names = append(names, string(t))
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

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

func newCAInitCommand(e *env) *cobra.Command {
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
			return runCAInit(e, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.commonName, "cn", "", `Common name of the CA (default "docker-tls CA NAME")`)
	f.StringVar(&opts.organization, "org", "", "Organization of the CA")
	f.StringVar(&opts.keyType, "key-type", string(pki.DefaultKeyType), "Key type: "+keyTypeNames())
	f.IntVar(&opts.days, "days", 0, "Lifetime in days (default 3650)")
	f.BoolVar(&opts.force, "force", false, "Replace an existing CA of the same name (its key is deleted)")
	f.StringVar(&opts.passphrase.file, "passphrase-file", "", "Passphrase for the file key store and --export")
	f.StringVar(&opts.export, "export", "", "Also write ca.pem and an encrypted ca-key.pem to this directory")
	_ = cmd.RegisterFlagCompletionFunc("key-type", completeKeyTypes)
	_ = cmd.MarkFlagDirname("export")
	return cmd
}

func runCAInit(e *env, opts caInitOptions) error {
	if err := castore.CheckName(opts.name); err != nil {
		return err
	}
	kt, err := pki.ParseKeyType(opts.keyType)
	if err != nil {
		return err
	}
	life, err := lifetime(opts.days)
	if err != nil {
		return err
	}
	pass, err := opts.passphrase.read()
	if err != nil {
		return err
	}
	var exportFiles []string
	if opts.export != "" {
		exportFiles = []string{filepath.Join(opts.export, "ca.pem"), filepath.Join(opts.export, "ca-key.pem")}
		if err := fsutil.CheckAbsent(exportFiles...); err != nil && !opts.force {
			return fmt.Errorf("--export: %w: use --force or another directory", err)
		}
		if pass == nil {
			if pass, err = e.promptNew("the exported CA key"); err != nil {
				return err
			}
		}
	}
	kind, err := e.defaultKeystore()
	if err != nil {
		return err
	}
	store := e.cas()
	if !opts.force {
		// Refuse before the (possibly slow) key generation.
		if _, err := store.Get(opts.name); err == nil {
			return fmt.Errorf("CA %q already exists: use --force to replace it (its key will be deleted)", opts.name)
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
	out := e.cli.Out()
	fmt.Fprintf(out, "Created CA %q (%s, valid until %s), key in the %s key store\n", stored.Name, pki.DescribeKey(stored.Cert.PublicKey), stored.Cert.NotAfter.Format("2006-01-02"), stored.KeyStore)
	fmt.Fprintf(out, "SHA-256 fingerprint: %s\n", pki.Fingerprint(stored.Cert))
	fmt.Fprintf(out, "Certificate: %s\n", stored.CertPath)
	if opts.export != "" {
		err := writeOutDir(opts.export, []outFile{
			{"ca.pem", pki.EncodeCertificate(stored.Cert), fsutil.PublicFile},
			{"ca-key.pem", exportKey, fsutil.PrivateFile},
		}, opts.force)
		if err != nil {
			return fmt.Errorf("CA %q was created, but the export failed: %w", stored.Name, err)
		}
		fmt.Fprintf(out, "Exported ca.pem and the encrypted ca-key.pem to %s\n", opts.export)
	}
	return nil
}

type caImportOptions struct {
	name       string
	certFile   string
	keyFile    string
	force      bool
	passphrase passphraseOptions
}

func newCAImportCommand(e *env) *cobra.Command {
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
			return runCAImport(e, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.certFile, "cert", "", "CA certificate file (PEM or DER)")
	f.StringVar(&opts.keyFile, "key", "", "CA private key file")
	f.BoolVar(&opts.force, "force", false, "Replace an existing CA of the same name")
	f.StringVar(&opts.passphrase.file, "passphrase-file", "", "File holding the key's passphrase")
	_ = cmd.MarkFlagRequired("cert")
	_ = cmd.MarkFlagRequired("key")
	_ = cmd.MarkFlagFilename("cert", "pem", "crt", "cer", "der")
	_ = cmd.MarkFlagFilename("key", "pem", "key", "der")
	return cmd
}

func runCAImport(e *env, opts caImportOptions) error {
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
	key, storePass, err := e.readKeyFile(opts.keyFile, "CA key", opts.passphrase)
	if err != nil {
		return err
	}
	ca, err := pki.LoadCA(cert, key)
	if err != nil {
		return fmt.Errorf("%s and %s: %w", opts.certFile, opts.keyFile, err)
	}
	// In the file store, an encrypted key stays encrypted with the
	// passphrase it came with (storePass is nil for a plain key).
	kind, err := e.defaultKeystore()
	if err != nil {
		return err
	}
	stored, err := e.cas().Create(opts.name, ca, castore.CreateOptions{KeyStore: kind, Passphrase: storePass, Imported: true, Force: opts.force})
	if err != nil {
		return err
	}
	out := e.cli.Out()
	fmt.Fprintf(out, "Imported CA %q (%s, %s, valid until %s)\n", stored.Name, stored.Cert.Subject.String(), pki.DescribeKey(stored.Cert.PublicKey), stored.Cert.NotAfter.Format("2006-01-02"))
	fmt.Fprintf(out, "SHA-256 fingerprint: %s\n", pki.Fingerprint(stored.Cert))
	return nil
}

// caView is how a CA is shown by ls and inspect (and their JSON).
type caView struct {
	Name        string
	Subject     string
	Issuer      string
	Serial      string
	KeyType     string
	NotBefore   time.Time
	NotAfter    time.Time
	DaysLeft    int
	Fingerprint string
	KeyStore    string
	KeyID       string
	Imported    bool
	Path        string
	Error       string `json:",omitempty"`
}

func newCAView(c *castore.CA, now time.Time) caView {
	return caView{
		Name:        c.Name,
		Subject:     c.Cert.Subject.String(),
		Issuer:      c.Cert.Issuer.String(),
		Serial:      fmt.Sprintf("%x", c.Cert.SerialNumber),
		KeyType:     pki.DescribeKey(c.Cert.PublicKey),
		NotBefore:   c.Cert.NotBefore,
		NotAfter:    c.Cert.NotAfter,
		DaysLeft:    int(c.Cert.NotAfter.Sub(now).Hours() / 24),
		Fingerprint: pki.Fingerprint(c.Cert),
		KeyStore:    c.KeyStore,
		KeyID:       c.KeyID,
		Imported:    c.Imported,
		Path:        c.CertPath,
	}
}

type caListOptions struct {
	format string
	quiet  bool
}

func newCAListCommand(e *env) *cobra.Command {
	var opts caListOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List CAs",
		Example: `  docker tls ca ls
  docker tls ca ls --format json
  docker tls ca ls --format '{{.Name}} {{.NotAfter}}'`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCAList(e, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.format, "format", "", flagsHelper.FormatHelp)
	f.BoolVarP(&opts.quiet, "quiet", "q", false, "Only show CA names")
	return cmd
}

const caTableFormat = "table {{.Name}}\t{{.KeyType}}\t{{.Expires}}\t{{.KeyStore}}\t{{.Fingerprint}}"

func runCAList(e *env, opts caListOptions) error {
	cas, errs, err := e.cas().List()
	if err != nil {
		return err
	}
	now := time.Now()
	views := make([]caView, 0, len(cas)+len(errs))
	for _, c := range cas {
		views = append(views, newCAView(c, now))
	}
	for name, err := range errs {
		views = append(views, caView{Name: name, Error: err.Error()})
	}
	format := opts.format
	switch {
	case opts.quiet:
		format = "{{.Name}}"
	case format == "" || format == formatter.TableFormatKey:
		format = caTableFormat
	}
	ctx := formatter.Context{Output: e.cli.Out(), Format: formatter.Format(format)}
	return ctx.Write(newCAListContext(), func(write func(formatter.SubContext) error) error {
		for i := range views {
			if err := write(&caListContext{v: &views[i]}); err != nil {
				return err
			}
		}
		return nil
	})
}

type caListContext struct {
	formatter.HeaderContext
	v *caView
}

func newCAListContext() *caListContext {
	c := &caListContext{}
	c.Header = formatter.SubHeaderContext{
		"Name": "NAME", "KeyType": "KEY", "Expires": "EXPIRES", "KeyStore": "KEY STORE",
		"Fingerprint": "FINGERPRINT (SHA-256)", "Subject": "SUBJECT", "DaysLeft": "DAYS LEFT",
		"NotAfter": "NOT AFTER", "NotBefore": "NOT BEFORE", "Error": "ERROR", "Imported": "IMPORTED",
		"Serial": "SERIAL", "Issuer": "ISSUER", "KeyID": "KEY ID", "Path": "PATH",
	}
	return c
}

func (c *caListContext) MarshalJSON() ([]byte, error) { return json.Marshal(c.v) }
func (c *caListContext) Name() string                 { return c.v.Name }
func (c *caListContext) KeyType() string              { return c.v.KeyType }
func (c *caListContext) KeyStore() string             { return c.v.KeyStore }
func (c *caListContext) KeyID() string                { return c.v.KeyID }
func (c *caListContext) Subject() string              { return c.v.Subject }
func (c *caListContext) Issuer() string               { return c.v.Issuer }
func (c *caListContext) Serial() string               { return c.v.Serial }
func (c *caListContext) Path() string                 { return c.v.Path }
func (c *caListContext) Imported() bool               { return c.v.Imported }
func (c *caListContext) DaysLeft() int                { return c.v.DaysLeft }
func (c *caListContext) Error() string                { return c.v.Error }
func (c *caListContext) NotBefore() string            { return c.v.NotBefore.Format(time.RFC3339) }
func (c *caListContext) NotAfter() string             { return c.v.NotAfter.Format(time.RFC3339) }

// Fingerprint is shortened in the table, like docker's IDs; the full value
// is in JSON, inspect and templates on .FullFingerprint.
func (c *caListContext) Fingerprint() string {
	if len(c.v.Fingerprint) > 23 {
		return c.v.Fingerprint[:23] + "…"
	}
	return c.v.Fingerprint
}
func (c *caListContext) FullFingerprint() string { return c.v.Fingerprint }

func (c *caListContext) Expires() string {
	if c.v.Error != "" {
		return "error: " + formatter.Ellipsis(c.v.Error, 40)
	}
	if c.v.DaysLeft < 0 {
		return "expired " + c.v.NotAfter.Format("2006-01-02")
	}
	return fmt.Sprintf("%s (%dd)", c.v.NotAfter.Format("2006-01-02"), c.v.DaysLeft)
}

type caInspectOptions struct {
	format string
}

func newCAInspectCommand(e *env) *cobra.Command {
	var opts caInspectOptions
	cmd := &cobra.Command{
		Use:   "inspect NAME [NAME...]",
		Short: "Show details of one or more CAs",
		Example: `  docker tls ca inspect default
  docker tls ca inspect default --format '{{.Fingerprint}}'`,
		Args: cli.RequiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCAInspect(e, opts, args)
		},
		ValidArgsFunction: completeCANames(e),
	}
	cmd.Flags().StringVarP(&opts.format, "format", "f", "", flagsHelper.InspectFormatHelp)
	return cmd
}

func runCAInspect(e *env, opts caInspectOptions, names []string) error {
	store := e.cas()
	now := time.Now()
	var views []caView
	var failed []error
	for _, n := range names {
		c, err := store.Get(n)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		views = append(views, newCAView(c, now))
	}
	if opts.format == "" || opts.format == formatter.JSONFormatKey {
		if len(views) > 0 {
			if err := printJSON(e.cli.Out(), views); err != nil {
				return err
			}
		}
	} else if err := printTemplate(e.cli.Out(), opts.format, views); err != nil {
		return err
	}
	// Like docker inspect: print what was found, then fail for the rest.
	return errors.Join(failed...)
}
