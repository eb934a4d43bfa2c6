package plugin

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/internal/browser"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
	"github.com/docker-tls/docker-tls/signin"
)

func newContextCommand(a *app) *cobra.Command {
	cmd := groupCommand("context", "Create Docker contexts with TLS material and keys in the key store")
	cmd.AddCommand(newContextCreateCommand(a))
	return cmd
}

// adoption is a client identity ready to become a context.
type adoption struct {
	name, host, description string
	caCert, cert            *x509.Certificate
	key                     crypto.Signer
	caName                  string // local CA, if any
	caURL                   string // remote CA, if any
	signIn                  bool   // the certificate came from a sign-in at caURL
	agent                   bool   // agent mode: no TLS files, the endpoint is the agent's socket
	imported                bool
	force                   bool
	refreshToken            string // a sign-in's, kept with the key
}

// createContext stores the key and writes the context (contexts.Create
// owns the order and the recovery), then tells a running agent.
func (a *app) createContext(ad adoption) (*contexts.Context, error) {
	kind, err := a.defaultKeystore()
	if err != nil {
		return nil, err
	}
	o := contexts.CreateOptions{
		Name: ad.name, Description: ad.description, Host: ad.host,
		Identity: contexts.Identity{CA: ad.caCert, Cert: ad.cert, Key: ad.key},
		KeyStore: kind, CAName: ad.caName, CAURL: ad.caURL, SignIn: ad.signIn, Imported: ad.imported, Force: ad.force,
		RefreshToken: ad.refreshToken,
	}
	if ad.agent {
		o.AgentSocket = agent.SocketPath(a.agentDir(), ad.name)
	}
	c, replaced, err := a.contexts().Create(o)
	if err != nil {
		return nil, err
	}
	if ad.agent || (replaced != nil && replaced.AgentMode()) {
		_, _, _ = agent.Call(a.agentDir(), "reload") // a running agent picks it up now
	}
	return c, nil
}

type contextCreateOptions struct {
	name        string
	host        string
	description string
	ca          string
	caFile      string
	issue       bool
	clientName  string
	groups      []string
	certFile    string
	keyFile     string
	keyType     string
	days        int
	force       bool
	passphrase  passphraseOptions
	remote      remoteOptions
	agent       bool
}

func newContextCreateCommand(a *app) *cobra.Command {
	var opts contextCreateOptions
	cmd := &cobra.Command{
		Use:   "create NAME --host tcp://HOST:2376 (--issue | --cert FILE --key FILE)",
		Short: "Create a Docker context for a TLS-protected engine",
		Long: `Create a Docker context that reaches an engine over mutual TLS, so that
docker context use NAME (or docker --context NAME …) switches to it.

With --issue a new client key is made into the key store (the OS keyring by
default) and its certificate is issued by the local CA --ca. With --cert and
--key an existing client certificate is adopted; its key moves into the key
store and the files are left alone.

The context holds ca.pem, cert.pem and a key.pem copy, because the docker
CLI reads only an unencrypted key file; docker tls lock NAME removes that
copy and docker tls unlock NAME restores it from the key store.`,
		Example: `  docker tls context create prod --host tcp://engine.example.com:2376 --issue
  docker tls context create lab --host tcp://192.0.2.10:2376 --ca lab --issue --client-name ci-runner
  docker tls context create prod --host tcp://engine.example.com:2376 --issue --group ops --group dev
  docker tls context create old --host tcp://10.0.0.5:2376 --ca-file ca.pem --cert cert.pem --key key.pem`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = args[0]
			return runContextCreate(a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVarP(&opts.host, "host", "H", "", "Engine endpoint, tcp://HOST:PORT (port 2376 if omitted)")
	f.StringVar(&opts.description, "description", "", "Description of the context")
	f.StringVar(&opts.ca, "ca", castore.DefaultName, "Local CA that issues the client certificate (with --issue) or that the server certificate chains to")
	f.StringVar(&opts.caFile, "ca-file", "", "CA certificate file instead of a local CA (with --cert/--key)")
	f.BoolVar(&opts.issue, "issue", false, "Make a client key and certificate from the local CA")
	f.StringVar(&opts.clientName, "client-name", "", "CN of the issued client certificate (default USER@HOSTNAME)")
	f.StringArrayVar(&opts.groups, "group", nil, "Group of the client (the certificate's O); an engine's policy grants roles to groups (repeatable)")
	f.StringVar(&opts.certFile, "cert", "", "Existing client certificate to adopt")
	f.StringVar(&opts.keyFile, "key", "", "Key of the existing client certificate (moves into the key store)")
	f.StringVar(&opts.keyType, "key-type", string(pki.DefaultKeyType), "Key type with --issue: "+keyTypeNames())
	addDaysFlag(f, &opts.days, fmt.Sprint(int(pki.DefaultClientLifetime.Hours()/24)))
	f.BoolVar(&opts.force, "force", false, "Replace an existing context of the same name")
	opts.passphrase.install(f)
	opts.remote.install(f)
	f.BoolVar(&opts.agent, "agent", false, "Agent mode: no key file at all; the docker CLI reaches the engine through docker tls agent")
	_ = cmd.MarkFlagRequired("host")
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(a))
	_ = cmd.RegisterFlagCompletionFunc("key-type", completeKeyTypes)
	_ = cmd.MarkFlagFilename("ca-file", "pem", "crt")
	_ = cmd.MarkFlagFilename("cert", "pem", "crt")
	_ = cmd.MarkFlagFilename("key", "pem", "key")
	return cmd
}

// clientSpec says how to get a client certificate: from a local CA, or
// from a remote one (remote.url set).
type clientSpec struct {
	ca         string
	remote     remoteOptions
	keyType    string
	days       int
	name       string
	groups     []string
	passphrase passphraseOptions
	// dest is where the certificate goes, for the CA's inventory
	// ("context NAME", "file DIR").
	dest string
}

// issuedClient is a new client identity.
type issuedClient struct {
	caCert, cert *x509.Certificate
	key          crypto.Signer
	caName       string
	// refreshToken is the identity provider's, from a sign-in.
	refreshToken string
}

// issueRemoteClient makes a key and has the CA service of s.remote sign
// it a client certificate named cn.
func (a *app) issueRemoteClient(ctx context.Context, s clientSpec, kt pki.KeyType, cn string) (*issuedClient, error) {
	if s.days != 0 {
		return nil, errors.New("--days: with --ca-url the remote CA decides the lifetime")
	}
	if len(s.groups) > 0 {
		return nil, errors.New("--group: with --ca-url the CA service decides the groups, from the token (docker tls ca token --group)")
	}
	if err := s.remote.check(); err != nil {
		return nil, err
	}
	key, err := pki.GenerateKey(kt)
	if err != nil {
		return nil, err
	}
	caCert, cert, refresh, err := remoteIssue(ctx, s.remote, key, remoteca.IssueRequest{CommonName: cn, DefaultName: defaultClientName(), Profile: pki.ClientProfile}, func(note string) {
		fmt.Fprintln(a.cli.Err(), "warning: the CA service:", note)
	}, a.signInPrompt(s.remote.noBrowser))
	if err != nil {
		return nil, err
	}
	return &issuedClient{caCert: caCert, cert: cert, key: key, refreshToken: refresh}, nil
}

// issueClient makes a key and gets it a client certificate, locally or from
// the remote CA, checking everything before anything is stored.
func (a *app) issueClient(ctx context.Context, s clientSpec) (*issuedClient, error) {
	kt, err := pki.ParseKeyType(s.keyType)
	if err != nil {
		return nil, err
	}
	life, err := lifetime(s.days)
	if err != nil {
		return nil, err
	}
	if err := pki.CheckGroups(s.groups); err != nil {
		return nil, fmt.Errorf("--group: %w", err)
	}
	cn := strings.TrimSpace(s.name)
	if s.remote.set() {
		return a.issueRemoteClient(ctx, s, kt, cn)
	}
	if err := s.remote.check(); err != nil {
		return nil, err
	}
	if cn == "" {
		cn = defaultClientName()
	}
	stored, ca, err := a.loadCA(s.ca, s.passphrase)
	if err != nil {
		return nil, err
	}
	if err := notRotating(stored); err != nil {
		return nil, err
	}
	key, err := pki.GenerateKey(kt)
	if err != nil {
		return nil, err
	}
	cert, err := a.recorded(ctx, stored, ca, s.dest).Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: cn, Groups: s.groups, PublicKey: key.Public(), Lifetime: life})
	if err != nil {
		return nil, err
	}
	return &issuedClient{caCert: stored.Cert, cert: cert, key: key, caName: stored.Name}, nil
}

func defaultClientName() string {
	name := "docker-tls"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
		if i := strings.LastIndexAny(name, `\/`); i >= 0 { // DOMAIN\user on Windows
			name = name[i+1:]
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		name += "@" + strings.SplitN(h, ".", 2)[0]
	}
	return name
}

// preflight checks the name, the host and the key store before any key is
// made, and refuses an existing context without --force.
func (a *app) preflight(name, rawHost string, force bool) (string, error) {
	if err := contexts.ValidateName(name); err != nil {
		return "", err
	}
	host, warning, err := contexts.ParseHost(rawHost)
	if err != nil {
		return "", err
	}
	if warning != "" {
		fmt.Fprintln(a.cli.Err(), "warning:", warning)
	}
	if !force {
		if _, err := a.contexts().Get(name); err == nil {
			return "", fmt.Errorf("context %q %w", name, contexts.ErrExists)
		}
	}
	if _, err := a.defaultKeystore(); err != nil {
		return "", err
	}
	return host, nil
}

func runContextCreate(a *app, opts contextCreateOptions) error {
	host, err := a.preflight(opts.name, opts.host, opts.force)
	if err != nil {
		return err
	}
	if err := checkContextSource(opts); err != nil {
		return err
	}
	ad := adoption{name: opts.name, host: host, description: opts.description, force: opts.force, agent: opts.agent}
	if opts.agent {
		if err := agentSupported(); err != nil {
			return err
		}
	}
	if opts.issue {
		is, err := a.issueClient(context.Background(), clientSpec{ca: opts.ca, remote: opts.remote, keyType: opts.keyType, days: opts.days, name: opts.clientName, groups: opts.groups, passphrase: opts.passphrase, dest: "context " + opts.name})
		if err != nil {
			return err
		}
		ad.caCert, ad.cert, ad.key, ad.caName, ad.caURL = is.caCert, is.cert, is.key, is.caName, opts.remote.url
	} else if err := a.adoptClientFiles(&ad, opts); err != nil {
		return err
	}
	c, err := a.createContext(ad)
	if err != nil {
		return err
	}
	a.printCreated(c)
	return nil
}

// checkContextSource refuses flags that do not say, or say twice, where
// the context's certificate comes from: --issue, or --cert and --key.
func checkContextSource(opts contextCreateOptions) error {
	adopting := opts.certFile != "" || opts.keyFile != ""
	switch {
	case opts.issue && adopting:
		return errors.New("give either --issue or --cert and --key, not both")
	case !opts.issue && !adopting:
		return errors.New("give --issue to make a client certificate from the local CA, or --cert and --key to adopt one")
	case adopting && (opts.certFile == "" || opts.keyFile == ""):
		return errors.New("--cert and --key go together")
	case opts.issue && opts.caFile != "":
		return errors.New("--ca-file is for adopting with --cert/--key; --issue uses a local CA (--ca NAME)")
	case adopting && len(opts.groups) > 0:
		return errors.New("--group goes with --issue: an adopted certificate keeps the groups it was issued with")
	case adopting && opts.remote.set():
		return errors.New("--ca-url issues a new certificate: use it with --issue, not with --cert/--key")
	}
	return nil
}

// adoptClientFiles reads the identity --cert and --key give, and the CA
// of --ca-file or of the local CA --ca names, into ad.
func (a *app) adoptClientFiles(ad *adoption, opts contextCreateOptions) error {
	files := clientFiles{ca: opts.caFile, cert: opts.certFile, key: opts.keyFile}
	if files.ca == "" {
		stored, err := a.cas().Get(opts.ca)
		if err != nil {
			return fmt.Errorf("%w (or give the CA certificate with --ca-file)", err)
		}
		files.caCert, ad.caName = stored.Cert, stored.Name
	}
	if err := a.loadClientFiles(&files, opts.passphrase); err != nil {
		return err
	}
	ad.caCert, ad.cert, ad.key, ad.imported = files.caCert, files.leaf, files.signer, true
	return nil
}

func (a *app) printCreated(c *contexts.Context) {
	out := a.cli.Out()
	fmt.Fprintf(out, "Created context %q for %s: client %q, issued by %q, valid until %s; key in the %s key store\n",
		c.Name, c.RemoteHost(), c.TLS.Subject, c.TLS.Issuer, c.TLS.NotAfter.Format("2006-01-02"), c.TLS.KeyStore)
	if c.AgentMode() {
		fmt.Fprintf(out, "Agent mode: no key file exists; the docker CLI reaches the engine through %s.\n", strings.TrimPrefix(c.Host, "unix://"))
		if !agent.Running(a.agentDir()) {
			fmt.Fprintln(out, "Start the agent first: docker tls agent   (at every login: docker tls agent install)")
		}
	}
	fmt.Fprintf(out, "Use it with: docker context use %s   (or: docker --context %s version)\n", c.Name, c.Name)
}

// clientFiles are the files of a client identity made elsewhere.
type clientFiles struct {
	ca, cert, key string // paths; ca may be empty when caCert is given
	caCert        *x509.Certificate
	leaf          *x509.Certificate
	signer        crypto.Signer
}

// loadClientFiles reads and checks a client identity: the CA is a CA, the
// certificate chains to it with clientAuth and is valid now, and the key
// (in any openssl format, asking for its passphrase if needed) matches.
func (a *app) loadClientFiles(f *clientFiles, pp passphraseOptions) error {
	if f.caCert == nil {
		data, err := readPEMFile(f.ca)
		if err != nil {
			return fmt.Errorf("read CA certificate: %w", err)
		}
		if f.caCert, err = pki.ParseCertificate(data); err != nil {
			return fmt.Errorf("CA certificate %s: %w", f.ca, err)
		}
		if err := pki.CheckCACert(f.caCert); err != nil {
			return fmt.Errorf("%s: %w", f.ca, err)
		}
	}
	data, err := readPEMFile(f.cert)
	if err != nil {
		return fmt.Errorf("read client certificate: %w", err)
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		return fmt.Errorf("client certificate %s: %w", f.cert, err)
	}
	f.leaf = certs[0]
	if err := pki.VerifyLeaf(f.leaf, f.caCert, pki.ClientProfile, time.Now()); err != nil {
		return fmt.Errorf("%s: %w", f.cert, err)
	}
	if f.signer, _, err = a.readKeyFile(f.key, "client key", pp); err != nil {
		return err
	}
	if err := pki.CheckKeyMatch(f.leaf, f.signer); err != nil {
		return fmt.Errorf("%s and %s: %w", f.cert, f.key, err)
	}
	return nil
}

// signInPrompt tells the person where to sign in, on stderr, and opens
// their browser there when there is one (and noBrowser is not asked).
func (a *app) signInPrompt(noBrowser bool) func(signin.Code) {
	return func(c signin.Code) {
		fmt.Fprintf(a.cli.Err(), "To sign in, open %s and enter the code %s\n", c.VerificationURI, c.UserCode)
		page := c.VerificationURI
		if c.Complete != "" {
			fmt.Fprintf(a.cli.Err(), "(or open %s)\n", c.Complete)
			page = c.Complete
		}
		if !noBrowser && browser.Open(page) == nil {
			fmt.Fprintln(a.cli.Err(), "Your browser was opened there.")
		}
		fmt.Fprintln(a.cli.Err(), "Waiting for the sign-in…")
	}
}
