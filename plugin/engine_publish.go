package plugin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
)

type enginePublishOptions struct {
	names    []string
	all      bool
	caURL    string
	remove   bool
	as       string
	parallel int
}

func newEnginePublishCommand(a *app) *cobra.Command {
	var opts enginePublishOptions
	cmd := &cobra.Command{
		Use:   "publish ENGINE... | --all  --ca-url URL [--remove]",
		Short: "Publish engines to the team's catalog at the CA service, or remove them",
		Long: `Publish an engine to the catalog of the CA service (docker tls ca serve) that
signs its certificates: its name, its endpoint, its CA and the policy dockerd
enforces there now (read over SSH; docker tls engine policy set changes it,
then publish again). Team members then get a context for each engine where
they have a role with docker tls enroll --engines.

The request is authenticated by the client certificate of the engine's
context (or of --as CONTEXT), whose identity the service must list in its
--catalog-admin, and the service must present a certificate of the
engine's CA. An engine without a policy is published as one where every
certificate of its CA is an admin, as it is. --remove takes engines out of
the catalog; the contexts team members made stay theirs.`,
		Example: `  docker tls engine publish build-1 --ca-url https://ca.example.com:2377
  docker tls engine publish --all --ca-url https://ca.example.com:2377
  docker tls engine publish build-1 --ca-url https://ca.example.com:2377 --remove`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.names = args
			return runEnginePublish(cmd.Context(), a, opts)
		},
		ValidArgsFunction: completeEngineNames(a),
	}
	f := cmd.Flags()
	f.BoolVar(&opts.all, "all", false, "Every engine docker tls set up")
	f.StringVar(&opts.caURL, "ca-url", "", "The CA service: https://HOST:2377 (replicas separated by commas)")
	f.BoolVar(&opts.remove, "remove", false, "Take the engines out of the catalog")
	f.StringVar(&opts.as, "as", "", "Context whose client certificate authenticates (default: each engine's own)")
	f.IntVar(&opts.parallel, "parallel", 4, "How many engines to publish at once, 1 to 64")
	_ = cmd.MarkFlagRequired("ca-url")
	_ = cmd.RegisterFlagCompletionFunc("as", completeContextNames(a, true))
	return cmd
}

func runEnginePublish(ctx context.Context, a *app, opts enginePublishOptions) error {
	if err := checkEngineSelection(opts.names, opts.all, opts.parallel, "publish"); err != nil {
		return err
	}
	if err := (&remoteca.Client{URL: opts.caURL}).CheckURL(); err != nil {
		return err
	}
	recs, err := a.engineRecords(opts.names, opts.all)
	if err != nil {
		return err
	}
	client := &remoteca.Client{URL: opts.caURL}
	failed := a.eachEngine(ctx, recs, opts.parallel, func(ctx context.Context, rec *engine.Record) (string, error) {
		return a.publishEngine(ctx, client, rec, opts)
	})
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d engines were not changed in the catalog", len(failed), len(recs))
	}
	return nil
}

// publishEngine publishes one engine with the policy in force on its host,
// or takes it out of the catalog (--remove), and says which.
func (a *app) publishEngine(ctx context.Context, client *remoteca.Client, rec *engine.Record, opts enginePublishOptions) (string, error) {
	name := rec.Context
	if opts.as != "" {
		name = opts.as
	}
	trust, ca, id, err := a.catalogIdentity(name, rec)
	if err != nil {
		return "", err
	}
	if opts.remove {
		if err := client.Unpublish(ctx, trust, id, rec.Name); err != nil {
			return "", err
		}
		return "removed from the catalog of " + opts.caURL, nil
	}
	s, err := a.dialEngine(ctx, rec)
	if err != nil {
		return "", err
	}
	defer s.Close()
	facts, err := engine.InspectPolicy(ctx, s)
	if err != nil {
		return "", err
	}
	pol, err := engine.PolicyInForce(facts)
	if err != nil {
		return "", err
	}
	replaced, err := client.Publish(ctx, trust, id, remoteca.CatalogEngine{Name: rec.Name, Host: rec.Host, CA: string(pki.EncodeCertificate(ca)), Policy: pol})
	if err != nil {
		return "", err
	}
	what := "published to"
	if replaced {
		what = "published again to"
	}
	if pol == nil {
		return fmt.Sprintf("%s %s, with no policy: every certificate of its CA is an admin there (docker tls engine policy set %s --grant … to change that)", what, opts.caURL, rec.Name), nil
	}
	return fmt.Sprintf("%s %s with its policy (%d grants)", what, opts.caURL, len(pol.Grants)), nil
}

// catalogIdentity is what a catalog request of rec's engine is made with:
// the CAs the service must present a certificate of, the engine's CA, and
// the client certificate and key of the context name.
func (a *app) catalogIdentity(name string, rec *engine.Record) ([]*x509.Certificate, *x509.Certificate, tls.Certificate, error) {
	t, err := a.contextTarget(name)
	if err != nil {
		return nil, nil, tls.Certificate{}, fmt.Errorf("context %q: %w", name, err)
	}
	if t.Key == nil {
		return nil, nil, tls.Certificate{}, fmt.Errorf("context %q has no usable key (%s)", name, t.KeyProblem)
	}
	trust := append([]*x509.Certificate{t.CA}, t.MoreCAs...)
	i := slices.IndexFunc(trust, func(c *x509.Certificate) bool { return pki.Fingerprint(c) == rec.CAFingerprint })
	if i < 0 {
		return nil, nil, tls.Certificate{}, fmt.Errorf("context %q does not trust engine %s's CA (%s): give --as a context of that CA", name, rec.Name, rec.CAFingerprint)
	}
	return trust, trust[i], tls.Certificate{Certificate: [][]byte{t.Cert.Raw}, PrivateKey: t.Key, Leaf: t.Cert}, nil
}
