package plugin

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/pki"
)

func newContextCommand(e *env) *cobra.Command {
	cmd := groupCommand("context", "Create Docker contexts with TLS material and keys in the key store")
	cmd.AddCommand(newContextCreateCommand(e))
	return cmd
}

// adoption is a client identity ready to become a context.
type adoption struct {
	name, host, description string
	caCert, cert            *x509.Certificate
	key                     crypto.Signer
	caName                  string // local CA, if any
	caURL                   string // remote CA, if any
	agent                   bool   // agent mode: no TLS files, the endpoint is the agent's socket
	imported                bool
	force                   bool
}

// createContext stores the key and writes the context (contexts.Create
// owns the order and the recovery), then tells a running agent.
func (e *env) createContext(a adoption) (*contexts.Context, error) {
	kind, err := e.defaultKeystore()
	if err != nil {
		return nil, err
	}
	o := contexts.CreateOptions{
		Name: a.name, Description: a.description, Host: a.host,
		Identity: contexts.Identity{CA: a.caCert, Cert: a.cert, Key: a.key},
		KeyStore: kind, CAName: a.caName, CAURL: a.caURL, Imported: a.imported, Force: a.force,
	}
	if a.agent {
		o.AgentSocket = agent.SocketPath(e.agentDir(), a.name)
	}
	c, replaced, err := e.contexts().Create(o)
	if err != nil {
		return nil, err
	}
	if a.agent || (replaced != nil && replaced.AgentMode()) {
		_, _, _ = agent.Call(e.agentDir(), "reload") // a running agent picks it up now
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
	certFile    string
	keyFile     string
	keyType     string
	days        int
	force       bool
	passphrase  passphraseOptions
	remote      remoteOptions
	agent       bool
}

func newContextCreateCommand(e *env) *cobra.Command {
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
  docker tls context create old --host tcp://10.0.0.5:2376 --ca-file ca.pem --cert cert.pem --key key.pem`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = args[0]
			return runContextCreate(e, opts)
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
	f.StringVar(&opts.certFile, "cert", "", "Existing client certificate to adopt")
	f.StringVar(&opts.keyFile, "key", "", "Key of the existing client certificate (moves into the key store)")
	f.StringVar(&opts.keyType, "key-type", string(pki.DefaultKeyType), "Key type with --issue: "+keyTypeNames())
	f.IntVar(&opts.days, "days", 0, fmt.Sprintf("Lifetime in days with --issue (default %d)", int(pki.DefaultClientLifetime.Hours()/24)))
	f.BoolVar(&opts.force, "force", false, "Replace an existing context of the same name")
	f.StringVar(&opts.passphrase.file, "passphrase-file", "", "Passphrase of the CA key or of --key, if encrypted")
	opts.remote.install(f)
	f.BoolVar(&opts.agent, "agent", false, "Agent mode: no key file at all; the docker CLI reaches the engine through docker tls agent")
	_ = cmd.MarkFlagRequired("host")
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(e))
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
	passphrase passphraseOptions
}

// issuedClient is a new client identity.
type issuedClient struct {
	caCert, cert *x509.Certificate
	key          crypto.Signer
	caName       string
}

// issueClient makes a key and gets it a client certificate, locally or from
// the remote CA, checking everything before anything is stored.
func (e *env) issueClient(ctx context.Context, s clientSpec) (*issuedClient, error) {
	kt, err := pki.ParseKeyType(s.keyType)
	if err != nil {
		return nil, err
	}
	life, err := lifetime(s.days)
	if err != nil {
		return nil, err
	}
	cn := strings.TrimSpace(s.name)
	if s.remote.set() {
		if s.days != 0 {
			return nil, errors.New("--days: with --ca-url the remote CA decides the lifetime")
		}
		if err := s.remote.check(); err != nil {
			return nil, err
		}
		key, err := pki.GenerateKey(kt)
		if err != nil {
			return nil, err
		}
		caCert, cert, err := remoteIssue(ctx, s.remote, key, cn, defaultClientName(), pki.SANs{}, pki.ClientProfile)
		if err != nil {
			return nil, err
		}
		return &issuedClient{caCert: caCert, cert: cert, key: key}, nil
	}
	if err := s.remote.check(); err != nil {
		return nil, err
	}
	if cn == "" {
		cn = defaultClientName()
	}
	stored, ca, err := e.loadCA(s.ca, s.passphrase)
	if err != nil {
		return nil, err
	}
	key, err := pki.GenerateKey(kt)
	if err != nil {
		return nil, err
	}
	cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: cn, PublicKey: key.Public(), Lifetime: life})
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

// preflight checks the name and host before any key is made, and refuses
// an existing context without --force.
func (e *env) preflight(name, rawHost string, force bool) (string, error) {
	if err := contexts.ValidateName(name); err != nil {
		return "", err
	}
	host, warning, err := contexts.ParseHost(rawHost)
	if err != nil {
		return "", err
	}
	if warning != "" {
		fmt.Fprintln(e.cli.Err(), "warning:", warning)
	}
	if !force {
		if _, err := e.contexts().Get(name); err == nil {
			return "", fmt.Errorf("context %q already exists: use --force to replace it", name)
		}
	}
	return host, nil
}

func runContextCreate(e *env, opts contextCreateOptions) error {
	host, err := e.preflight(opts.name, opts.host, opts.force)
	if err != nil {
		return err
	}
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
	}
	a := adoption{name: opts.name, host: host, description: opts.description, force: opts.force, agent: opts.agent}
	if opts.agent {
		if err := agentSupported(); err != nil {
			return err
		}
	}
	if opts.issue {
		is, err := e.issueClient(context.Background(), clientSpec{ca: opts.ca, remote: opts.remote, keyType: opts.keyType, days: opts.days, name: opts.clientName, passphrase: opts.passphrase})
		if err != nil {
			return err
		}
		a.caCert, a.cert, a.key, a.caName, a.caURL = is.caCert, is.cert, is.key, is.caName, opts.remote.url
	} else {
		if opts.remote.set() {
			return errors.New("--ca-url issues a new certificate: use it with --issue, not with --cert/--key")
		}
		files := clientFiles{ca: opts.caFile, cert: opts.certFile, key: opts.keyFile}
		if files.ca == "" {
			stored, err := e.cas().Get(opts.ca)
			if err != nil {
				return fmt.Errorf("%w (or give the CA certificate with --ca-file)", err)
			}
			files.caCert, a.caName = stored.Cert, stored.Name
		}
		if err := e.loadClientFiles(&files, opts.passphrase); err != nil {
			return err
		}
		a.caCert, a.cert, a.key, a.imported = files.caCert, files.leaf, files.signer, true
	}
	c, err := e.createContext(a)
	if err != nil {
		return err
	}
	e.printCreated(c)
	return nil
}

func (e *env) printCreated(c *contexts.Context) {
	out := e.cli.Out()
	fmt.Fprintf(out, "Created context %q for %s: client %q, issued by %q, valid until %s; key in the %s key store\n",
		c.Name, c.RemoteHost(), c.TLS.Subject, c.TLS.Issuer, c.TLS.NotAfter.Format("2006-01-02"), c.TLS.KeyStore)
	if c.AgentMode() {
		fmt.Fprintf(out, "Agent mode: no key file exists; the docker CLI reaches the engine through %s.\n", strings.TrimPrefix(c.Host, "unix://"))
		if !agent.Running(e.agentDir()) {
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
func (e *env) loadClientFiles(f *clientFiles, pp passphraseOptions) error {
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
	if f.signer, _, err = e.readKeyFile(f.key, "client key", pp); err != nil {
		return err
	}
	if err := pki.CheckKeyMatch(f.leaf, f.signer); err != nil {
		return fmt.Errorf("%s and %s: %w", f.cert, f.key, err)
	}
	return nil
}

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

func newImportCommand(e *env) *cobra.Command {
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
			return runImport(e, opts)
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
	f.StringVar(&opts.passphrase.file, "passphrase-file", "", "Passphrase of the key file, if encrypted")
	_ = cmd.MarkFlagRequired("host")
	_ = cmd.MarkFlagDirname("dir")
	return cmd
}

func runImport(e *env, opts importOptions) error {
	host, err := e.preflight(opts.name, opts.host, opts.force)
	if err != nil {
		return err
	}
	files := clientFiles{ca: opts.caFile, cert: opts.certFile, key: opts.keyFile}
	switch {
	case opts.dir != "" && (opts.caFile != "" || opts.certFile != "" || opts.keyFile != ""):
		return errors.New("give either --dir or --ca, --cert and --key, not both")
	case opts.dir != "":
		files = clientFiles{ca: filepath.Join(opts.dir, "ca.pem"), cert: filepath.Join(opts.dir, "cert.pem"), key: filepath.Join(opts.dir, "key.pem")}
	case opts.caFile == "" || opts.certFile == "" || opts.keyFile == "":
		return errors.New("give --dir DIR, or all of --ca, --cert and --key")
	}
	if err := e.loadClientFiles(&files, opts.passphrase); err != nil {
		return err
	}
	c, err := e.createContext(adoption{
		name: opts.name, host: host, description: opts.description,
		caCert: files.caCert, cert: files.leaf, key: files.signer, imported: true, force: opts.force,
	})
	if err != nil {
		return err
	}
	e.printCreated(c)
	if opts.removeOriginals {
		if err := os.Remove(files.key); err != nil {
			return fmt.Errorf("the context was created, but removing %s failed: %w", files.key, err)
		}
		fmt.Fprintf(e.cli.Out(), "Removed %s: the key now lives only in the %s key store (and the context's copy)\n", files.key, c.TLS.KeyStore)
	}
	return nil
}
