package plugin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/internal/output"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
)

type caTokenOptions struct {
	ca      string
	ttl     time.Duration
	uses    int
	cn      string
	groups  []string
	profile string
	sans    []string
	days    int
	count   int
	format  string
	db      dbOptions
}

func newCATokenCommand(a *app) *cobra.Command {
	var opts caTokenOptions
	cmd := &cobra.Command{
		Use:   "token [--ca NAME] [--cn NAME] [--ttl 1h] [--uses 1]",
		Short: "Mint a one-time enrollment token for docker tls enroll",
		Long: `Print an enrollment token for a CA served with docker tls ca serve:
DTLS1-<the CA's SHA-256 fingerprint>-<secret>. The fingerprint lets the
client refuse any other CA; the secret authorises --uses enrollments until
--ttl runs out. Only a hash of the secret is stored. A token is bound to a
profile (client, or server with the --san names the certificate may carry)
and, with --cn, to one client name. With --group, every certificate it
enrolls carries those groups, and only those: the enrolling client cannot
choose its own.

The token is printed on stdout and nowhere else: hand it over as you would a
password. --count N mints N tokens alike in one go, one per line (or, with
--format json, a list with each token's id and expiry).`,
		Example: `  docker tls ca token --ca engine --cn alice
  docker tls ca token --ca engine --cn bob --group ops --group dev
  docker tls ca token --ca engine --profile server --san engine2.example.com --ttl 15m
  docker tls ca token --ca team --count 50 --ttl 24h > tokens.txt
  docker tls ca token --ca team --count 3 --format json`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCAToken(cmd.Context(), a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.ca, "ca", castore.DefaultName, "CA the token enrolls with")
	f.DurationVar(&opts.ttl, "ttl", time.Hour, "How long the token is valid")
	f.IntVar(&opts.uses, "uses", 1, "How many enrollments it allows")
	f.StringVar(&opts.cn, "cn", "", "Bind the token to this client name (CN)")
	f.StringArrayVar(&opts.groups, "group", nil, "A group the enrolled certificates carry (their O), for engines' policies (repeatable)")
	f.StringVar(&opts.profile, "profile", "client", "client or server")
	f.StringSliceVar(&opts.sans, "san", nil, "Names a server certificate may carry (with --profile server)")
	addDaysFlag(f, &opts.days, "the profile's")
	f.IntVar(&opts.count, "count", 1, "How many tokens to mint, 1 to 10000")
	opts.db.install(f)
	f.StringVar(&opts.format, "format", "", "json: a list of {token, id, expires}; default: one token per line")
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(a))
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("profile", cobra.FixedCompletions([]string{"client", "server"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runCAToken(ctx context.Context, a *app, opts caTokenOptions) error {
	stored, err := a.cas().Get(opts.ca)
	if err != nil {
		return err
	}
	profile, err := pki.ParseProfile(opts.profile)
	if err != nil {
		return err
	}
	if _, err := lifetime(opts.days); err != nil {
		return err
	}
	if opts.format != "" && opts.format != "json" {
		return fmt.Errorf("--format %q: use json, or leave it out for one token per line", opts.format)
	}
	to := remoteca.TokenOptions{Profile: profile, CN: opts.cn, Groups: opts.groups, SANs: opts.sans, Days: opts.days, TTL: opts.ttl, Uses: opts.uses}
	// Bad input changes nothing: checked before the store is opened.
	if err := remoteca.CheckTokenOptions(&to, opts.count); err != nil {
		return err
	}
	store, err := opts.db.open(ctx, a, stored)
	if err != nil {
		return err
	}
	defer store.Close()
	toks, ts, err := store.NewBatch(stored.Cert.Raw, to, opts.count)
	if err != nil {
		return err
	}
	out := a.cli.Out()
	if opts.format == "json" {
		type minted struct {
			Token   string    `json:"token"`
			ID      string    `json:"id"`
			Expires time.Time `json:"expires"`
		}
		list := make([]minted, len(toks))
		for i := range toks {
			list[i] = minted{Token: toks[i], ID: ts[i].ID, Expires: ts[i].Expires}
		}
		if err := output.JSON(out, list); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(out, strings.Join(toks, "\n"))
	}
	t := ts[0]
	if len(ts) == 1 {
		fmt.Fprintf(a.cli.Err(), "Token %s for CA %q: %s, %d use(s), valid until %s\n", t.ID, stored.Name, t.Profile, t.Uses, t.Expires.Local().Format(time.RFC3339))
	} else {
		fmt.Fprintf(a.cli.Err(), "%d tokens for CA %q: %s, %d use(s) each, valid until %s\n", len(ts), stored.Name, t.Profile, t.Uses, t.Expires.Local().Format(time.RFC3339))
	}
	return nil
}

func newCATokensCommand(a *app) *cobra.Command {
	cmd := groupCommand("tokens", "Manage enrollment tokens")
	ls := caDBListing{
		cmd: &cobra.Command{
			Use:     "ls [--ca NAME]",
			Short:   "List a CA's enrollment tokens (never their secrets)",
			Example: `  docker tls ca tokens ls --ca engine`,
		},
		quietHelp: "Only show token ids",
		rows: func(_ context.Context, db *remoteca.DB) ([]map[string]any, error) {
			list, err := db.Tokens()
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
				rows = append(rows, map[string]any{"ID": t.ID, "Profile": string(t.Profile), "CN": t.CN, "Groups": strings.Join(t.Groups, ","), "SANs": strings.Join(t.SANs, ","),
					"Uses": fmt.Sprintf("%d/%d", t.Used, t.Uses), "Expires": t.Expires.Local().Format(time.RFC3339), "State": state})
			}
			return rows, err
		},
		table:   "table {{.ID}}\t{{.Profile}}\t{{.CN}}\t{{.Groups}}\t{{.Uses}}\t{{.Expires}}\t{{.State}}",
		quiet:   "{{.ID}}",
		headers: map[string]string{"ID": "ID", "Profile": "PROFILE", "CN": "CN", "Groups": "GROUPS", "SANs": "SANS", "Uses": "USES", "Expires": "EXPIRES", "State": "STATE"},
	}
	cmd.AddCommand(ls.command(a))
	return cmd
}

func newCARevokeTokenCommand(a *app) *cobra.Command {
	var ca string
	var db dbOptions
	cmd := &cobra.Command{
		Use:     "revoke-token ID",
		Short:   "Make an enrollment token unusable",
		Example: `  docker tls ca revoke-token 3f2a9c --ca engine`,
		Args:    cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, store, err := db.openCA(cmd.Context(), a, ca)
			if err != nil {
				return err
			}
			defer store.Close()
			t, err := store.RevokeToken(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.cli.Out(), "Revoked token %s\n", t.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&ca, "ca", castore.DefaultName, "CA")
	db.install(cmd.Flags())
	return cmd
}
