package plugin

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/renewal"
)

type renewOptions struct {
	all        bool
	within     string
	rekey      bool
	dryRun     bool
	days       int
	passphrase passphraseOptions
	// signInAgain lets an expired sign-in context sign the person in
	// again: renew NAME, where they are at the terminal; not renew --all
	// (often cron) nor the agent, which only say who must.
	signInAgain bool
}

func newRenewCommand(a *app) *cobra.Command {
	var opts renewOptions
	cmd := &cobra.Command{
		Use:   "renew [CONTEXT...|--all] [--within 30d] [--rekey] [--dry-run]",
		Short: "Re-issue client certificates before they expire, and swap them in",
		Long: `Re-issue the client certificate of a context from the CA that issued it: the
local CA recorded with the context, or the remote CA it enrolled with (then
the still-valid certificate authenticates the renewal over mutual TLS, so no
token is needed; an expired one needs a new token and docker tls enroll).

The key is kept unless --rekey makes a new one in the key store. The new
certificate is checked (chain, key match, clientAuth) before it is swapped
into the context by an atomic rename; on any failure the old certificate
stays and keeps working. Named contexts are renewed now; --all renews the
contexts whose certificate expires within --within (default 30d).`,
		Example: `  docker tls renew prod
  docker tls renew --all --within 14d
  docker tls renew prod --rekey
  docker tls renew --all --dry-run`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRenew(cmd.Context(), a, opts, args)
		},
		ValidArgsFunction: completeContextNames(a, true),
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.all, "all", "a", false, "Renew every docker-tls context that expires within --within")
	f.StringVar(&opts.within, "within", "30d", "With --all: renew what expires within this span (30d, 2w, 12h)")
	f.BoolVar(&opts.rekey, "rekey", false, "Make a new key too (into the key store)")
	f.BoolVar(&opts.dryRun, "dry-run", false, "Say what would be renewed, change nothing")
	addDaysFlag(f, &opts.days, "the old certificate's")
	opts.passphrase.install(f)
	return cmd
}

func runRenew(ctx context.Context, a *app, opts renewOptions, names []string) error {
	within, err := parseSpan(opts.within)
	if err != nil {
		return fmt.Errorf("--within %w", err)
	}
	if _, err := lifetime(opts.days); err != nil {
		return err
	}
	if err := namesOrAll(names, opts.all, true, "context", "renew"); err != nil {
		return err
	}
	opts.signInAgain = !opts.all
	targets, err := a.renewTargets(names, opts.all, within)
	if err != nil {
		return err
	}
	if opts.all && len(targets) == 0 {
		fmt.Fprintf(a.cli.Out(), "Nothing expires within %s\n", opts.within)
		return nil
	}
	var errs []error
	for _, c := range targets {
		left := time.Until(c.TLS.NotAfter)
		if opts.dryRun {
			fmt.Fprintf(a.cli.Out(), "%s: would renew (expires %s, in %d days) from %s\n", c.Name, c.TLS.NotAfter.Format("2006-01-02"), int(left.Hours()/24), renewSource(c))
			continue
		}
		cert, err := a.renewOne(ctx, c, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w (the old certificate is unchanged)", c.Name, err))
			continue
		}
		a.renewFailures().Clear(c.Name)
		fmt.Fprintf(a.cli.Out(), "%s: renewed, serial %x, valid until %s\n", c.Name, cert.SerialNumber, cert.NotAfter.Format(time.RFC3339))
	}
	return errors.Join(errs...)
}

// renewTargets are the contexts to renew: those named, or with all every
// context docker tls made that expires within.
func (a *app) renewTargets(names []string, all bool, within time.Duration) ([]*contexts.Context, error) {
	if all {
		return a.contexts().ExpiringWithin(within)
	}
	var targets []*contexts.Context
	for _, n := range names {
		c, err := a.contexts().Managed(n)
		if err != nil {
			return nil, err
		}
		targets = append(targets, c)
	}
	return targets, nil
}

func renewSource(c *contexts.Context) string {
	switch {
	case c.TLS.CAURL != "":
		return c.TLS.CAURL
	case c.TLS.CA != "":
		return fmt.Sprintf("CA %q", c.TLS.CA)
	}
	return "(imported: renew where it was issued)"
}

// renewer renews contexts, asking for a local CA's passphrase (once) the
// way opts says.
func (a *app) renewer(ctx context.Context, opts renewOptions) *renewal.Renewer {
	r := &renewal.Renewer{
		Contexts: a.contexts(),
		Keys:     a.keyStores(),
		CA:       func(name string) (*castore.CA, *pki.CA, error) { return a.loadCA(name, opts.passphrase) },
		Next: func(stored *castore.CA) (*pki.CA, error) {
			pass, err := opts.passphrase.read()
			if err != nil {
				return nil, err
			}
			return a.cas().NextSigner(stored, pass)
		},
		Issuer: func(stored *castore.CA, ca *pki.CA, context string) pki.Issuer {
			return a.recorded(ctx, stored, ca, "context "+context)
		},
		Renewed: func(c *contexts.Context) {
			if c.AgentMode() {
				_, _, _ = agent.Call(a.agentDir(), "reload") // the agent rereads the certificate
			}
		},
	}
	if opts.signInAgain {
		r.SignIn = func(ctx context.Context, c *contexts.Context, key crypto.Signer) (*x509.Certificate, string, error) {
			fmt.Fprintf(a.cli.Err(), "%s: the certificate expired; sign in again with the team's identity provider\n", c.Name)
			_, cert, refresh, err := signInIssue(ctx, remoteOptions{url: c.TLS.CAURL, fingerprint: c.TLS.CAFingerprint}, key, a.signInPrompt(false))
			return cert, refresh, err
		}
	}
	return r
}

// renewOne renews one context; a failure says what to run.
func (a *app) renewOne(ctx context.Context, c *contexts.Context, opts renewOptions) (*x509.Certificate, error) {
	var life time.Duration
	if opts.days > 0 {
		life = time.Duration(opts.days) * 24 * time.Hour
	}
	cert, err := a.renewer(ctx, opts).Renew(ctx, c, renewal.Options{Rekey: opts.rekey, Lifetime: life})
	// Hinted per context: renew --all joins several of these, and the
	// command's own hint would reach only the first.
	return cert, hint(a.configDir(), err)
}
