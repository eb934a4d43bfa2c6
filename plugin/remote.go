package plugin

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command/formatter"
	flagsHelper "github.com/docker/cli/cli/flags"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
)

// readSecretRef resolves a secret given as env:VAR, file:PATH or, for
// convenience at a prompt, the literal value (which ends up in shell
// history and the process list, so the help recommends the other forms).
func readSecretRef(ref, what string) (string, error) {
	switch {
	case strings.HasPrefix(ref, "env:"):
		v := os.Getenv(ref[4:])
		if v == "" {
			return "", fmt.Errorf("%s: environment variable %s is empty or unset", what, ref[4:])
		}
		return strings.TrimSpace(v), nil
	case strings.HasPrefix(ref, "file:"):
		data, err := readSmallFile(ref[5:], 64*1024)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	return strings.TrimSpace(ref), nil
}

// argvWarning warns when a token or auth key was given on the command
// line itself, where other users of the machine can read it (ps,
// /proc/PID/cmdline) and shells keep it in their history.
func (o remoteOptions) argvWarning() string {
	for _, v := range []struct{ flag, val string }{{"--token", o.token}, {"--auth-key", o.authKey}} {
		if v.val != "" && !strings.HasPrefix(v.val, "env:") && !strings.HasPrefix(v.val, "file:") {
			return fmt.Sprintf("%s on the command line can be read by other users (ps) and stays in your shell history: use %s file:PATH or %s env:VAR", v.flag, v.flag, v.flag)
		}
	}
	return ""
}

// authKeyBytes decodes a cfssl auth key: hex, as cfssl writes them.
func authKeyBytes(s string) ([]byte, error) {
	k, err := hex.DecodeString(s)
	if err != nil || len(k) < 16 {
		return nil, errors.New("the auth key must be at least 16 bytes of hex, as in cfssl's auth_keys")
	}
	return k, nil
}

// remoteOptions are the flags of every command that can issue from a
// remote CA (docker tls ca serve, or cfssl).
type remoteOptions struct {
	url         string
	token       string
	fingerprint string
	authKey     string
	profile     string
}

func (o *remoteOptions) install(f *pflag.FlagSet) {
	f.StringVar(&o.url, "ca-url", "", "Remote CA to enroll with: https://HOST:2377 (docker tls ca serve) or a cfssl server")
	f.StringVar(&o.token, "token", "", "Enrollment token from docker tls ca token: env:VAR, file:PATH or the token itself")
	f.StringVar(&o.fingerprint, "ca-fingerprint", "", "With --auth-key: the CA's SHA-256 fingerprint (sha256:AB:CD…)")
	f.StringVar(&o.authKey, "auth-key", "", "cfssl auth key (hex): env:VAR or file:PATH")
	f.StringVar(&o.profile, "profile", "", "Profile to ask a cfssl server for (default: client)")
}

func (o remoteOptions) set() bool { return o.url != "" }

func (o remoteOptions) check() error {
	switch {
	case !o.set() && (o.token != "" || o.authKey != "" || o.fingerprint != ""):
		return errors.New("--token, --auth-key and --ca-fingerprint go with --ca-url")
	case o.set() && o.token == "" && o.authKey == "":
		return errors.New("--ca-url needs --token (docker tls ca serve) or --auth-key with --ca-fingerprint (cfssl)")
	case o.token != "" && o.authKey != "":
		return errors.New("give --token or --auth-key, not both")
	case o.authKey != "" && o.fingerprint == "":
		return errors.New("--auth-key needs --ca-fingerprint sha256:…: the CA is pinned before anything is sent")
	}
	return nil
}

// remoteIssue makes a CSR for key and has the remote CA sign it. It returns
// the pinned CA and the certificate, both checked.
//
// cn is the name asked for; defaultCN, if set, is the name to use when the
// user gave none (cn is then empty).
func remoteIssue(ctx context.Context, o remoteOptions, key crypto.Signer, cn, defaultCN string, sans pki.SANs, profile pki.Profile) (*x509.Certificate, *x509.Certificate, error) {
	if err := o.check(); err != nil {
		return nil, nil, err
	}
	c := &remoteca.Client{URL: o.url}
	var auth remoteca.Auth
	if o.token != "" {
		tok, err := readSecretRef(o.token, "--token")
		if err != nil {
			return nil, nil, err
		}
		p, err := remoteca.ParseToken(tok)
		if err != nil {
			return nil, nil, err
		}
		c.Fingerprint, auth.Token = p.Fingerprint, p.String()
	} else {
		ref, err := readSecretRef(o.authKey, "--auth-key")
		if err != nil {
			return nil, nil, err
		}
		if auth.AuthKey, err = authKeyBytes(ref); err != nil {
			return nil, nil, err
		}
		if c.Fingerprint, err = remoteca.NormalizeFingerprint(o.fingerprint); err != nil {
			return nil, nil, fmt.Errorf("--ca-fingerprint: %w", err)
		}
	}
	if o.profile != "" {
		p, err := pki.ParseProfile(o.profile)
		if err != nil {
			return nil, nil, err
		}
		profile = p
	}
	ca, err := c.FetchCA(ctx)
	if err != nil {
		return nil, nil, err
	}
	var hosts []string
	for _, s := range sans.Strings() {
		hosts = append(hosts, strings.TrimPrefix(strings.TrimPrefix(s, "DNS:"), "IP:"))
	}
	sign := func(cn string) (*x509.Certificate, error) {
		csr, err := pki.NewCSR(key, cn, sans)
		if err != nil {
			return nil, err
		}
		return c.Sign(ctx, ca, auth, csr, profile, hosts)
	}
	// Without --client-name, let a token that names the client decide; a
	// token that does not is refused before it is spent, and the default
	// name goes instead.
	askCN := cn
	if askCN == "" && auth.Token == "" {
		askCN = defaultCN // cfssl takes the CN from the CSR
	}
	cert, err := sign(askCN)
	if err != nil && askCN == "" && defaultCN != "" && strings.Contains(err.Error(), "does not name the client") {
		cert, err = sign(defaultCN)
	}
	if err != nil {
		return nil, nil, err
	}
	return ca, cert, nil
}

// tokens and inventory of a local CA live in its directory.
func caTokens(ca *castore.CA) *remoteca.Tokens {
	return &remoteca.Tokens{Path: filepath.Join(ca.Dir, "tokens.json")}
}

func caInventory(ca *castore.CA) *remoteca.Inventory {
	return &remoteca.Inventory{Path: filepath.Join(ca.Dir, "issued.jsonl")}
}

type caServeOptions struct {
	ca         string
	listen     string
	sans       []string
	authKeys   []string
	passphrase passphraseOptions
}

func newCAServeCommand(e *env) *cobra.Command {
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
logged to stderr (serial, CN, token id, source; never a secret) and kept in
the inventory (docker tls ca issued ls). SIGINT or SIGTERM stop it cleanly.`,
		Example: `  docker tls ca serve --ca engine --listen 0.0.0.0:2377 --san engine.example.com
  docker tls ca token --ca engine --cn alice        # on the same host, for each client`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCAServe(cmd.Context(), e, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.ca, "ca", castore.DefaultName, "CA to serve")
	f.StringVar(&opts.listen, "listen", "127.0.0.1:2377", "Address to listen on")
	f.StringSliceVar(&opts.sans, "san", nil, "Names clients use to reach this service (repeatable)")
	f.StringArrayVar(&opts.authKeys, "auth-key", nil, "Also accept this cfssl auth key (hex): env:VAR or file:PATH (repeatable)")
	f.StringVar(&opts.passphrase.file, "passphrase-file", "", "Passphrase of the CA key, if encrypted")
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(e))
	return cmd
}

func runCAServe(ctx context.Context, e *env, opts caServeOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	stored, ca, err := e.loadCA(opts.ca, opts.passphrase)
	if err != nil {
		return err
	}
	names := opts.sans
	if len(names) == 0 {
		names = []string{"localhost", "127.0.0.1", "::1"}
		if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
			names = append(names, h)
		}
	}
	keys := map[string][]byte{}
	for i, ref := range opts.authKeys {
		v, err := readSecretRef(ref, "--auth-key")
		if err != nil {
			return err
		}
		if keys[fmt.Sprintf("key%d", i+1)], err = authKeyBytes(v); err != nil {
			return err
		}
	}
	srv := &remoteca.Server{
		CA: ca, Tokens: caTokens(stored), Inventory: caInventory(stored), AuthKeys: keys,
		Log: log.New(e.cli.Err(), "", log.LstdFlags), Limiter: remoteca.NewLimiter(10, time.Minute),
	}
	cert, err := srv.ServingCert(names)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.listen, err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(e.cli.Err(), "Serving CA %q (SHA-256 %s) on https://%s for %s\n", stored.Name, pki.Fingerprint(stored.Cert), l.Addr(), strings.Join(names, ", "))
	fmt.Fprintf(e.cli.Err(), "Mint a token per client: docker tls ca token --ca %s --cn NAME\n", stored.Name)
	err = srv.Serve(ctx, l, cert)
	fmt.Fprintln(e.cli.Err(), "Stopped")
	return err
}

type caTokenOptions struct {
	ca      string
	ttl     time.Duration
	uses    int
	cn      string
	profile string
	sans    []string
	days    int
}

func newCATokenCommand(e *env) *cobra.Command {
	var opts caTokenOptions
	cmd := &cobra.Command{
		Use:   "token [--ca NAME] [--cn NAME] [--ttl 1h] [--uses 1]",
		Short: "Mint a one-time enrollment token for docker tls enroll",
		Long: `Print an enrollment token for a CA served with docker tls ca serve:
DTLS1-<the CA's SHA-256 fingerprint>-<secret>. The fingerprint lets the
client refuse any other CA; the secret authorises --uses enrollments until
--ttl runs out. Only a hash of the secret is stored. A token is bound to a
profile (client, or server with the --san names the certificate may carry)
and, with --cn, to one client name.

The token is printed on stdout and nowhere else: hand it over as you would a
password.`,
		Example: `  docker tls ca token --ca engine --cn alice
  docker tls ca token --ca engine --profile server --san engine2.example.com --ttl 15m`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCAToken(e, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.ca, "ca", castore.DefaultName, "CA the token enrolls with")
	f.DurationVar(&opts.ttl, "ttl", time.Hour, "How long the token is valid")
	f.IntVar(&opts.uses, "uses", 1, "How many enrollments it allows")
	f.StringVar(&opts.cn, "cn", "", "Bind the token to this client name (CN)")
	f.StringVar(&opts.profile, "profile", "client", "client or server")
	f.StringSliceVar(&opts.sans, "san", nil, "Names a server certificate may carry (with --profile server)")
	f.IntVar(&opts.days, "days", 0, "Lifetime of the certificates in days (default: the profile's)")
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(e))
	_ = cmd.RegisterFlagCompletionFunc("profile", cobra.FixedCompletions([]string{"client", "server"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runCAToken(e *env, opts caTokenOptions) error {
	stored, err := e.cas().Get(opts.ca)
	if err != nil {
		return err
	}
	profile, err := pki.ParseProfile(opts.profile)
	if err != nil {
		return err
	}
	if opts.days < 0 {
		return errors.New("--days must be positive")
	}
	tok, t, err := caTokens(stored).New(stored.Cert.Raw, remoteca.TokenOptions{
		Profile: profile, CN: opts.cn, SANs: opts.sans, Days: opts.days, TTL: opts.ttl, Uses: opts.uses,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(e.cli.Out(), tok)
	fmt.Fprintf(e.cli.Err(), "Token %s for CA %q: %s, %d use(s), valid until %s\n", t.ID, stored.Name, t.Profile, t.Uses, t.Expires.Local().Format(time.RFC3339))
	return nil
}

type caListFlags struct {
	ca     string
	format string
	quiet  bool
}

func (o *caListFlags) install(cmd *cobra.Command, e *env, quietHelp string) {
	f := cmd.Flags()
	f.StringVar(&o.ca, "ca", castore.DefaultName, "CA")
	f.StringVar(&o.format, "format", "", flagsHelper.FormatHelp)
	f.BoolVarP(&o.quiet, "quiet", "q", false, quietHelp)
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(e))
}

func newCATokensCommand(e *env) *cobra.Command {
	cmd := groupCommand("tokens", "Manage enrollment tokens")
	var opts caListFlags
	ls := &cobra.Command{
		Use:     "ls [--ca NAME]",
		Aliases: []string{"list"},
		Short:   "List a CA's enrollment tokens (never their secrets)",
		Example: `  docker tls ca tokens ls --ca engine`,
		Args:    cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			stored, err := e.cas().Get(opts.ca)
			if err != nil {
				return err
			}
			list, err := caTokens(stored).List()
			if err != nil {
				return err
			}
			now := time.Now()
			rows := make([]map[string]any, 0, len(list))
			for _, t := range list {
				state := "active"
				switch {
				case t.Revoked:
					state = "revoked"
				case !now.Before(t.Expires):
					state = "expired"
				case t.Used >= t.Uses:
					state = "used"
				}
				rows = append(rows, map[string]any{"ID": t.ID, "Profile": string(t.Profile), "CN": t.CN, "SANs": strings.Join(t.SANs, ","),
					"Uses": fmt.Sprintf("%d/%d", t.Used, t.Uses), "Expires": t.Expires.Local().Format(time.RFC3339), "State": state})
			}
			return writeRows(e, opts.format, opts.quiet, "table {{.ID}}\t{{.Profile}}\t{{.CN}}\t{{.Uses}}\t{{.Expires}}\t{{.State}}", "{{.ID}}", rows,
				map[string]string{"ID": "ID", "Profile": "PROFILE", "CN": "CN", "SANs": "SANS", "Uses": "USES", "Expires": "EXPIRES", "State": "STATE"})
		},
	}
	opts.install(ls, e, "Only show token ids")
	cmd.AddCommand(ls)
	return cmd
}

func newCARevokeTokenCommand(e *env) *cobra.Command {
	var ca string
	cmd := &cobra.Command{
		Use:     "revoke-token ID",
		Short:   "Make an enrollment token unusable",
		Example: `  docker tls ca revoke-token 3f2a9c --ca engine`,
		Args:    cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			stored, err := e.cas().Get(ca)
			if err != nil {
				return err
			}
			t, err := caTokens(stored).Revoke(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.cli.Out(), "Revoked token %s\n", t.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&ca, "ca", castore.DefaultName, "CA")
	return cmd
}

func newCAIssuedCommand(e *env) *cobra.Command {
	cmd := groupCommand("issued", "The inventory of certificates a served CA issued")
	var opts caListFlags
	ls := &cobra.Command{
		Use:     "ls [--ca NAME]",
		Aliases: []string{"list"},
		Short:   "List certificates issued through docker tls ca serve",
		Example: `  docker tls ca issued ls --ca engine
  docker tls ca issued ls --ca engine --format json`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			stored, err := e.cas().Get(opts.ca)
			if err != nil {
				return err
			}
			list, err := caInventory(stored).List()
			if err != nil {
				return err
			}
			rows := make([]map[string]any, 0, len(list))
			for _, r := range list {
				rows = append(rows, map[string]any{"Serial": r.Serial, "CN": r.CN, "Profile": r.Profile, "SANs": strings.Join(r.SANs, ","),
					"NotAfter": r.NotAfter.Local().Format("2006-01-02"), "Token": r.Token, "Source": r.Source, "IssuedAt": r.IssuedAt.Local().Format(time.RFC3339)})
			}
			return writeRows(e, opts.format, opts.quiet, "table {{.Serial}}\t{{.CN}}\t{{.Profile}}\t{{.NotAfter}}\t{{.Source}}\t{{.IssuedAt}}", "{{.Serial}}", rows,
				map[string]string{"Serial": "SERIAL", "CN": "CN", "Profile": "PROFILE", "SANs": "SANS", "NotAfter": "EXPIRES", "Token": "TOKEN", "Source": "SOURCE", "IssuedAt": "ISSUED"})
		},
	}
	opts.install(ls, e, "Only show serials")
	cmd.AddCommand(ls)
	return cmd
}

// writeRows prints simple listings with docker's formatter: table, json,
// or a template over map rows.
func writeRows(e *env, format string, quiet bool, table, quietFormat string, rows []map[string]any, headers map[string]string) error {
	switch {
	case quiet:
		format = quietFormat
	case format == "" || format == formatter.TableFormatKey:
		format = table
	}
	ctx := formatter.Context{Output: e.cli.Out(), Format: formatter.Format(format)}
	return ctx.Write(header(headers), func(write func(formatter.SubContext) error) error {
		for _, r := range rows {
			if err := write(row(r)); err != nil {
				return err
			}
		}
		return nil
	})
}

// row lets docker's formatter render a map: templates index it by key
// ({{.ID}}), {{json .}} marshals it whole. header is the table's header row.
type row map[string]any

func (row) FullHeader() any { return nil }

type header map[string]string

func (h header) FullHeader() any { return h }
