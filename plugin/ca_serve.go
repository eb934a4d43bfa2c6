package plugin

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/policy"
	"github.com/docker-tls/docker-tls/remoteca"
)

type caServeOptions struct {
	ca       string
	listen   string
	sans     []string
	authKeys []string
	maxLife  []string
	// renewAfterExpiry is the grace after which an expired client
	// certificate no longer renews; 0: none.
	renewAfterExpiry time.Duration
	oidc             remoteca.OIDC
	catalogAdmins    []string
	db               dbOptions
	passphrase       passphraseOptions
}

func newCAServeCommand(a *app) *cobra.Command {
	var opts caServeOptions
	cmd := &cobra.Command{
		Use:   "serve [--ca NAME] [--listen 127.0.0.1:2377]",
		Short: "Sign CSRs for enrolled clients, so the CA key never leaves this host",
		Long: `Run a signing service for a CA, in the foreground, on an engine's host or a
CA machine. Clients enroll with docker tls enroll and a one-time token from
docker tls ca token: they send only a CSR, pinned to this CA's fingerprint.

It speaks a compatible subset of cfssl's API (POST /api/v1/cfssl/info and
/api/v1/cfssl/authsign), so cfssl clients with an --auth-key work too. Its
HTTPS certificate is issued from the CA itself for --san names (default:
localhost, 127.0.0.1, ::1 and this host's name).

It listens on 127.0.0.1:2377 unless --listen says otherwise; listening on
every interface must be asked for (--listen 0.0.0.0:2377). Every issuance is
logged to stderr, one line per issuance, renewal or refusal (serial, CN,
token id, source; never a secret) and kept in the inventory (docker tls ca
issued ls). SIGINT or SIGTERM stop it cleanly. GET /healthz answers 200
while the service can issue.

State: tokens, the inventory and revocations live in the CA's own SQLite
file, or with --db postgres://… in a PostgreSQL database that several
replicas (each with the CA) share behind one name: a token is spent by one
transaction, so it stays one-time across replicas. One database per CA.

Rules it enforces: a retried enrollment (same token, same key) gets the same
certificate back; a client certificate renews once, in the last third of its
life, keeping its lifetime; revoked certificates and names (docker tls ca
revoke) neither renew nor enroll; nothing outlives the CA or the profile's
--max-lifetime. An address that guesses (10 tokens no one issued, or wrong
auth keys, within a minute) waits a minute; retries of a real token that
was spent or has expired do not count, so an office behind one address is
not locked out by its own laptops.

With --renew-after-expiry DURATION, a client certificate that expired less
than DURATION ago still renews (a laptop that slept past its end needs no
new token): the TLS handshake proves its holder has the old key, and a
revoked certificate or name never renews. Off by default.

With --oidc-issuer URL and --oidc-client-id ID (a public client of the
team's OpenID provider), a laptop may sign in instead of holding a token:
the service verifies the ID token (issuer, audience, expiry, signature
against the provider's keys) and issues a client certificate whose CN is
the --oidc-user-claim (email) and whose groups are the --oidc-groups-claim
(groups), for --max-lifetime oidc=DURATION (default 12h). The info
endpoint says so; a revoked name gets nothing.

The service also keeps the team's catalog of engines (name, endpoint,
policy). Identities named by --catalog-admin (user:CN or group:NAME)
publish engines to it with docker tls engine publish; every holder of a
valid certificate of the CA gets contexts for the engines where they have
a role with docker tls enroll --engines.`,
		Example: `  docker tls ca serve --ca engine --listen 0.0.0.0:2377 --san engine.example.com
  docker tls ca token --ca engine --cn alice        # on the same host, for each client
  docker tls ca serve --ca team --max-lifetime 24h --db env:CA_DB --listen 0.0.0.0:2377 --san ca.example.com
  docker tls ca serve --ca team --max-lifetime 12h --renew-after-expiry 72h   # laptops that slept over a weekend
  docker tls ca serve --ca team --oidc-issuer https://accounts.example.com --oidc-client-id docker-tls --oidc-allowed-domain example.com
  docker tls ca serve --ca team --catalog-admin group:platform --catalog-admin user:alice@example.com`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCAServe(cmd.Context(), a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.ca, "ca", castore.DefaultName, "CA to serve")
	f.StringVar(&opts.listen, "listen", "127.0.0.1:2377", "Address to listen on")
	f.StringSliceVar(&opts.sans, "san", nil, "Names clients use to reach this service (repeatable)")
	f.StringArrayVar(&opts.authKeys, "auth-key", nil, "Also accept this cfssl auth key (hex): env:VAR or file:PATH (repeatable)")
	f.StringArrayVar(&opts.maxLife, "max-lifetime", nil, "Longest certificate issued: DURATION (client), PROFILE=DURATION or oidc=DURATION (sign-ins, default 12h) (repeatable)")
	f.DurationVar(&opts.renewAfterExpiry, "renew-after-expiry", 0, "Renew a client certificate that expired less than this long ago (0: only valid ones)")
	f.StringVar(&opts.oidc.Issuer, "oidc-issuer", "", "Also issue client certificates to users signed in with this OpenID provider (its issuer URL)")
	f.StringVar(&opts.oidc.ClientID, "oidc-client-id", "", "With --oidc-issuer: the public client (no secret) laptops sign in as")
	f.StringVar(&opts.oidc.UserClaim, "oidc-user-claim", "email", "With --oidc-issuer: the ID token claim that names the user (the certificate's CN)")
	f.StringVar(&opts.oidc.GroupsClaim, "oidc-groups-claim", "groups", "With --oidc-issuer: the ID token claim that lists the user's groups")
	f.StringArrayVar(&opts.oidc.AllowedDomains, "oidc-allowed-domain", nil, "With --oidc-issuer: only users of this email domain (repeatable)")
	f.StringArrayVar(&opts.catalogAdmins, "catalog-admin", nil, "Who may publish engines to the catalog: user:CN or group:NAME (repeatable)")
	opts.db.install(f)
	opts.passphrase.install(f)
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(a))
	return cmd
}

func runCAServe(ctx context.Context, a *app, opts caServeOptions) error {
	cfg, err := a.checkCAServe(opts)
	if err != nil {
		return err
	}
	maxLife, oidc, admins, keys := cfg.maxLife, cfg.oidc, cfg.admins, cfg.keys
	stored, ca, pass, err := a.loadCAPassphrase(opts.ca, opts.passphrase)
	if err != nil {
		return err
	}
	var next *pki.CA
	if stored.NextCert != nil {
		if next, err = a.cas().NextSigner(stored, pass); err != nil {
			return err
		}
	}
	names := opts.sans
	if len(names) == 0 {
		names = remoteca.DefaultNames()
	}
	if host, _, err := net.SplitHostPort(opts.listen); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		fmt.Fprintf(a.cli.Err(), "warning: --listen %s accepts connections on every interface of this machine: give one address (--listen 192.0.2.10:2377) to serve only where the clients are\n", opts.listen)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if oidc != nil {
		// Before the database or the socket: a provider that does not
		// answer is said at once.
		if err := oidc.Connect(ctx, &http.Client{Timeout: 15 * time.Second}); err != nil {
			return err
		}
	}
	db, err := opts.db.open(ctx, a, stored)
	if err != nil {
		return err
	}
	defer db.Close()
	srv := &remoteca.Server{
		CA: ca, Next: next, DB: db, AuthKeys: keys, MaxLifetime: maxLife,
		Log: log.New(a.cli.Err(), "", log.LstdFlags), Limiter: remoteca.NewLimiter(10, time.Minute), RenewAfterExpiry: opts.renewAfterExpiry,
		OIDC: oidc, CatalogAdmins: admins,
	}
	cert, err := srv.ServingCert(names)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.listen, err)
	}
	w := a.cli.Err()
	fmt.Fprintf(w, "Serving CA %q (SHA-256 %s) on https://%s for %s\n", stored.Name, pki.Fingerprint(stored.Cert), l.Addr(), strings.Join(names, ", "))
	fmt.Fprintf(w, "State in %s\n", db.Where)
	fmt.Fprintf(w, "Mint a token per client: docker tls ca token --ca %s --cn NAME\n", stored.Name)
	if oidc != nil {
		fmt.Fprintf(w, "Sign-in: ID tokens of %s for client %s get %s client certificates\n", oidc.Issuer, oidc.ClientID, oidc.Lifetime())
	}
	if len(admins) > 0 {
		fmt.Fprintf(w, "Catalog: engines published by %s\n", strings.Join(opts.catalogAdmins, ", "))
	}
	go a.followRotation(ctx, srv, stored, pass)
	err = srv.Serve(ctx, l, cert)
	fmt.Fprintln(a.cli.Err(), "Stopped")
	return err
}

// followRotation switches the service to the CA's new one when a
// rotation (docker tls ca rotate on this host) adds, promotes or drops it,
// without a restart: during a rotation laptops renew from the new CA and
// learn both; after it, only the new one counts.
func (a *app) followRotation(ctx context.Context, srv *remoteca.Server, was *castore.CA, pass []byte) {
	a.cas().Follow(ctx, was, pass, 2*time.Second, func(ca, next *pki.CA) error {
		if err := srv.SetCA(ca, next); err != nil {
			return err
		}
		if next != nil {
			srv.Log.Printf("rotation: CA %s is being replaced by %s; renewals now come from it", was.Name, pki.Fingerprint(next.Cert))
		} else {
			srv.Log.Printf("CA %s is now %s", was.Name, pki.Fingerprint(ca.Cert))
		}
		return nil
	}, func(err error) {
		srv.Log.Printf("error: CA %s changed, and the service could not follow: %v", was.Name, err)
	})
}

// parseMaxLifetimes reads --max-lifetime: "24h" caps client certificates,
// "server=720h" a profile, "oidc=8h" the certificates of sign-ins.
func parseMaxLifetimes(specs []string) (map[pki.Profile]time.Duration, time.Duration, error) {
	out := map[pki.Profile]time.Duration{}
	var signIn time.Duration
	for _, spec := range specs {
		profile, dur := string(pki.ClientProfile), spec
		if p, d, ok := strings.Cut(spec, "="); ok {
			profile, dur = p, d
		}
		d, err := time.ParseDuration(dur)
		if err != nil || d < remoteca.MinLifetime {
			return nil, 0, fmt.Errorf("--max-lifetime %s: give a duration of at least %s, such as 24h, server=2160h or oidc=8h", spec, remoteca.MinLifetime)
		}
		if profile == "oidc" {
			signIn = d
			continue
		}
		pr, err := pki.ParseProfile(profile)
		if err != nil {
			return nil, 0, fmt.Errorf("--max-lifetime %s: %w", spec, err)
		}
		out[pr] = d
	}
	return out, signIn, nil
}

// caServeSettings are what ca serve's flags decide.
type caServeSettings struct {
	maxLife map[pki.Profile]time.Duration
	oidc    *remoteca.OIDC
	admins  []policy.Subject
	keys    map[string][]byte
}

// checkCAServe checks ca serve's flags, before the CA or the database is
// opened, and warns of secrets on the command line.
func (a *app) checkCAServe(opts caServeOptions) (*caServeSettings, error) {
	maxLife, signInLife, err := parseMaxLifetimes(opts.maxLife)
	if err != nil {
		return nil, err
	}
	var oidc *remoteca.OIDC
	if opts.oidc.Issuer != "" || opts.oidc.ClientID != "" {
		oidc = &opts.oidc
		oidc.MaxLifetime = signInLife
		if err := oidc.Check(); err != nil {
			return nil, err
		}
	} else if signInLife != 0 {
		return nil, fmt.Errorf("--max-lifetime oidc=%s: sign-ins are off; give --oidc-issuer too", signInLife)
	}
	var admins []policy.Subject
	for _, v := range opts.catalogAdmins {
		sub, err := policy.ParseSubject(v)
		if err != nil || sub == policy.Everyone {
			return nil, fmt.Errorf("--catalog-admin %q: give user:CN or group:NAME", v)
		}
		admins = append(admins, sub)
	}
	if opts.renewAfterExpiry < 0 || opts.renewAfterExpiry > 90*24*time.Hour {
		return nil, fmt.Errorf("--renew-after-expiry %s: give a duration from 0 (off) to 2160h (90 days)", opts.renewAfterExpiry)
	}
	keys := map[string][]byte{}
	for i, ref := range opts.authKeys {
		if !strings.HasPrefix(ref, "env:") && !strings.HasPrefix(ref, "file:") {
			fmt.Fprintln(a.cli.Err(), "warning: --auth-key on the command line can be read by other users (ps) and stays in your shell history: use --auth-key file:PATH or --auth-key env:VAR")
		}
		v, err := readSecretRef(ref, "--auth-key")
		if err != nil {
			return nil, err
		}
		if keys[fmt.Sprintf("key%d", i+1)], err = authKeyBytes(v); err != nil {
			return nil, err
		}
	}
	return &caServeSettings{maxLife: maxLife, oidc: oidc, admins: admins, keys: keys}, nil
}
