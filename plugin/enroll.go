package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/probe"
	"github.com/docker-tls/docker-tls/remoteca"
)

type enrollOptions struct {
	name        string
	host        string
	description string
	clientName  string
	keyType     string
	force       bool
	noVerify    bool
	agent       bool
	timeout     time.Duration
	remote      remoteOptions
	// engines makes a context for each catalog engine (no NAME, no
	// --host), each named prefix+engine.
	engines bool
	prefix  string
}

func newEnrollCommand(a *app) *cobra.Command {
	var opts enrollOptions
	cmd := &cobra.Command{
		Use:   "enroll (NAME --host tcp://HOST:2376 | --engines) --ca-url https://HOST:2377 (--token TOKEN | --ca-fingerprint FP)",
		Short: "Get a client certificate from a remote CA and create a context with it",
		Long: `Enroll with a CA whose key stays elsewhere (docker tls ca serve on the
engine's host, or a cfssl server): the key is made here, into the key store,
and only a CSR travels.

With --token (from docker tls ca token) the CA is pinned by the fingerprint
inside the token: a server presenting any other CA is refused before
anything secret is sent. With a cfssl server, pin it with --ca-fingerprint
and authenticate with --auth-key. The certificate that comes back must be for
our key and chain to the pinned CA; then the context is created and checked
with docker tls verify. If anything fails, nothing is left behind: no key,
no context (--no-verify keeps a context whose engine cannot be reached yet).

--ca-url may list the replicas of one service, separated by commas: a
request that fails on the way (a refused connection, a timeout, a replica
that went away) is sent again to the next, a bounded number of times. The
service answers a repeated request with the certificate it already issued,
so a retry never spends a second use of the token.

--lifetime asks for a short-lived certificate (the service caps it with
its --max-lifetime); docker tls renew, or the agent, renews it over mutual
TLS in the last third of its life, with no token.

With --ca-fingerprint alone (no token, no auth key), against a service run
with --oidc-issuer, the person signs in with the team's identity provider
instead (the OAuth 2.0 device flow): enroll prints the provider's page and
a code, waits while they sign in there, and sends the service only the
CSR and the ID token. The provider names the certificate (its user claim)
and its groups; the service decides its lifetime. Where the provider
offers offline_access, its refresh token is kept with the key, in the key
store: while the certificate is valid it renews over mutual TLS; once it
has expired, docker tls renew and the agent sign in again with the refresh
token, and ask the person only when the provider no longer accepts it.

With --engines instead of NAME and --host, enroll makes a context for each
engine of the service's catalog (docker tls engine publish) where the
certificate's user or one of its groups has a role, named after the engine
(after --prefix, if given), all with the one certificate. Run it again to
add engines published since, follow changed endpoints and get a new
certificate. It never replaces a context it did not make from this
catalog: a clash is skipped and named.`,
		Example: `  docker tls enroll prod --ca-url https://engine.example.com:2377 --token file:token.txt --host tcp://engine.example.com:2376
  docker tls enroll dev --ca-url https://ca1.example.com:2377,https://ca2.example.com:2377 --token env:TOKEN --lifetime 24h --host tcp://dev.example.com:2376
  docker tls enroll lab --ca-url https://ca.lab:8888 --ca-fingerprint sha256:AB:CD:… --auth-key env:CFSSL_KEY --host tcp://lab:2376
  docker tls enroll team --ca-url https://ca.example.com:2377 --ca-fingerprint sha256:AB:CD:… --host tcp://build.example.com:2376   # sign in
  docker tls enroll --engines --prefix team- --ca-url https://ca.example.com:2377 --ca-fingerprint sha256:AB:CD:…   # every engine of the team`,
		Args: cli.RequiresMaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.name = args[0]
			}
			if opts.engines {
				return runEnrollEngines(cmd.Context(), a, opts)
			}
			return runEnroll(cmd.Context(), a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVarP(&opts.host, "host", "H", "", "Engine endpoint, tcp://HOST:PORT (port 2376 if omitted)")
	f.StringVar(&opts.description, "description", "", "Description of the context")
	f.StringVar(&opts.clientName, "client-name", "", "CN to ask for (default USER@HOSTNAME; a token may fix it)")
	f.StringVar(&opts.keyType, "key-type", string(pki.DefaultKeyType), "Key type: "+keyTypeNames())
	f.BoolVar(&opts.force, "force", false, "Replace an existing context of the same name")
	f.BoolVar(&opts.noVerify, "no-verify", false, "Keep the context even if docker tls verify fails")
	f.BoolVar(&opts.agent, "agent", false, "Agent mode: no key file at all; the agent also renews the certificate")
	f.DurationVar(&opts.timeout, "timeout", 10*time.Second, "Time limit for each network step")
	f.DurationVar(&opts.remote.lifetime, "lifetime", 0, "Ask for a certificate valid this long (e.g. 24h); default: the token's or the service's")
	f.BoolVar(&opts.engines, "engines", false, "A context for each engine of the service's catalog where you have a role (no NAME, no --host)")
	f.StringVar(&opts.prefix, "prefix", "", "With --engines: put this before each engine's name to name its context")
	opts.remote.install(f)
	_ = cmd.MarkFlagRequired("ca-url")
	_ = cmd.RegisterFlagCompletionFunc("key-type", completeKeyTypes)
	return cmd
}

func runEnroll(ctx context.Context, a *app, opts enrollOptions) error {
	switch {
	case opts.name == "":
		return errors.New("enroll needs the NAME of the context to make, or --engines for every engine of the service's catalog")
	case opts.host == "":
		return errors.New("enroll NAME needs --host tcp://HOST:2376: the engine the context reaches")
	case opts.prefix != "":
		return errors.New("--prefix goes with --engines")
	}
	host, err := a.preflight(opts.name, opts.host, opts.force)
	if err != nil {
		return err
	}
	if _, err := a.enrollPreflight(opts.remote); err != nil {
		return err
	}
	is, err := a.issueClient(ctx, clientSpec{remote: opts.remote, keyType: opts.keyType, name: opts.clientName})
	if err != nil {
		return err
	}
	c, err := a.createContext(adoption{
		name: opts.name, host: host, description: opts.description, force: opts.force,
		caCert: is.caCert, cert: is.cert, key: is.key, caURL: opts.remote.url, signIn: opts.remote.signIn(), agent: opts.agent,
		refreshToken: is.refreshToken,
	})
	if err != nil {
		return err
	}
	if opts.noVerify {
		a.printCreated(c)
		return nil
	}
	report, err := a.verifyEnrolled(ctx, c, opts.timeout)
	if err != nil {
		return err
	}
	if report.Worst() == probe.Fail {
		printReport(a.cli.Err(), report, false)
		_, undoErr := a.contexts().Remove(opts.name)
		first := report.First(probe.Fail)
		msg := fmt.Sprintf("enrolled, but docker tls verify failed (%s: %s), so the context and its key were removed", first.ID, first.Message)
		if undoErr != nil {
			msg += fmt.Sprintf(" (cleanup: %v)", undoErr)
		}
		if opts.remote.signIn() {
			return errors.New(msg + ": fix the cause and enroll again (a new sign-in), or use --no-verify")
		}
		return errors.New(msg + "; the token is spent: fix the cause and enroll with a new token, or use --no-verify")
	}
	a.printCreated(c)
	fmt.Fprintf(a.cli.Out(), "Verified: %d checks ok, %d warnings\n", report.Count(probe.OK), report.Count(probe.Warn))
	return nil
}

// verifyEnrolled runs verify's checks on a context just made; an
// agent-mode one whose agent is not running yet is checked against the
// engine itself.
func (a *app) verifyEnrolled(ctx context.Context, c *contexts.Context, timeout time.Duration) (*probe.Report, error) {
	t, err := a.contextTarget(c.Name)
	if err != nil {
		return nil, err
	}
	if c.AgentMode() && !agent.Running(a.agentDir()) {
		t.AgentSocket = ""
	}
	return probe.Run(ctx, t, probe.Options{Timeout: timeout}), nil
}

// enrollPreflight checks an enrollment's remote options and the key store
// before anything is sent (a token spent on a laptop whose keyring is
// missing would be lost), warns of a secret given on the command line,
// and returns the kind of key store the keys go to.
func (a *app) enrollPreflight(o remoteOptions) (string, error) {
	if err := o.check(); err != nil {
		return "", err
	}
	if l := o.lifetime; l != 0 && l < remoteca.MinLifetime {
		return "", fmt.Errorf("--lifetime %s: give at least %s, such as 24h", l, remoteca.MinLifetime)
	}
	if w := o.argvWarning(); w != "" {
		fmt.Fprintln(a.cli.Err(), "warning:", w)
	}
	return a.defaultKeystore()
}
