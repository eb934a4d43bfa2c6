package plugin

import (
	"context"
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
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
)

type caServeOptions struct {
	ca         string
	listen     string
	sans       []string
	authKeys   []string
	passphrase passphraseOptions
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
logged to stderr (serial, CN, token id, source; never a secret) and kept in
the inventory (docker tls ca issued ls). SIGINT or SIGTERM stop it cleanly.`,
		Example: `  docker tls ca serve --ca engine --listen 0.0.0.0:2377 --san engine.example.com
  docker tls ca token --ca engine --cn alice        # on the same host, for each client`,
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
	opts.passphrase.install(f)
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(a))
	return cmd
}

func runCAServe(ctx context.Context, a *app, opts caServeOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	stored, ca, err := a.loadCA(opts.ca, opts.passphrase)
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
	tokens, err := caTokens(stored)
	if err != nil {
		return err
	}
	defer tokens.Close()
	srv := &remoteca.Server{
		CA: ca, Tokens: tokens, Inventory: caInventory(stored), AuthKeys: keys,
		Log: log.New(a.cli.Err(), "", log.LstdFlags), Limiter: remoteca.NewLimiter(10, time.Minute),
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
	fmt.Fprintf(a.cli.Err(), "Serving CA %q (SHA-256 %s) on https://%s for %s\n", stored.Name, pki.Fingerprint(stored.Cert), l.Addr(), strings.Join(names, ", "))
	fmt.Fprintf(a.cli.Err(), "Mint a token per client: docker tls ca token --ca %s --cn NAME\n", stored.Name)
	err = srv.Serve(ctx, l, cert)
	fmt.Fprintln(a.cli.Err(), "Stopped")
	return err
}

// tokens and inventory of a local CA live in its directory: tokens in a
// SQLite database (service.db), into which an older docker-tls's
// tokens.json is imported once (and kept as tokens.json.migrated).
func caTokens(ca *castore.CA) (*remoteca.SQLTokens, error) {
	s, err := remoteca.OpenSQLTokens(filepath.Join(ca.Dir, "service.db"), filepath.Join(ca.Dir, "tokens.json"))
	if err != nil {
		return nil, fmt.Errorf("the token database of CA %q: %w", ca.Name, err)
	}
	return s, nil
}

func caInventory(ca *castore.CA) *remoteca.Inventory {
	return &remoteca.Inventory{Path: filepath.Join(ca.Dir, "issued.jsonl")}
}
