package plugin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/docker-tls/docker-tls/catalog"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/probe"
	"github.com/docker-tls/docker-tls/remoteca"
)

// runEnrollEngines is enroll --engines: one certificate from the CA
// service, then a context for each catalog engine where it has a role.
func runEnrollEngines(ctx context.Context, a *app, opts enrollOptions) error {
	if err := checkEnrollEngines(opts); err != nil {
		return err
	}
	kind, err := a.enrollPreflight(opts.remote)
	if err != nil {
		return err
	}
	is, err := a.issueClient(ctx, clientSpec{remote: opts.remote, keyType: opts.keyType, name: opts.clientName})
	if err != nil {
		return err
	}
	client := &remoteca.Client{URL: opts.remote.url}
	engines, err := client.Catalog(ctx, []*x509.Certificate{is.caCert}, tls.Certificate{Certificate: [][]byte{is.cert.Raw}, PrivateKey: is.key, Leaf: is.cert})
	if err != nil {
		return fmt.Errorf("the catalog: %w", err)
	}
	who := pki.Identity(is.cert)
	if len(engines) == 0 {
		return fmt.Errorf("the catalog of %s gives %s no role on any engine, so no context was made: a catalog admin grants one (docker tls engine policy set ENGINE --grant user:%s=viewer, then docker tls engine publish ENGINE)", opts.remote.url, who, is.cert.Subject.CommonName)
	}
	sy := catalog.Sync{URL: opts.remote.url, Prefix: opts.prefix, Cert: is.cert, Key: is.key, KeyStore: kind, SignIn: opts.remote.signIn()}
	results, gone, err := sy.Apply(a.contexts(), engines, time.Now())
	if err != nil {
		return err
	}
	made := 0
	for _, r := range results {
		if r.Outcome != catalog.Skipped {
			made++
		}
	}
	if err := printSynced(a.cli.Out(), results, a.verifyMade(ctx, results, opts.timeout)); err != nil {
		return err
	}
	fmt.Fprintf(a.cli.Out(), "Signed in as %s until %s; %d of %d engines have a context\n", who, is.cert.NotAfter.Local().Format("2006-01-02 15:04"), made, len(results))
	for _, name := range gone {
		fmt.Fprintf(a.cli.Err(), "warning: context %s came from this catalog, which no longer lists its engine for you: docker tls rm %s removes it\n", name, name)
	}
	if made == 0 {
		return errors.New("no context was made: every engine's name clashes with a context that did not come from this catalog; give --prefix to name them apart")
	}
	return nil
}

// checkEnrollEngines refuses what does not go with enroll --engines.
func checkEnrollEngines(opts enrollOptions) error {
	switch {
	case opts.name != "":
		return errors.New("--engines names each context after its engine: give no NAME (--prefix puts something before each name)")
	case opts.host != "":
		return errors.New("--engines takes each engine's endpoint from the catalog: give no --host")
	case opts.force:
		return errors.New("--force does not go with --engines: it updates the contexts it made from this catalog without it, and never replaces another")
	case opts.agent:
		return errors.New("--agent does not go with --engines: enroll an engine by NAME with --agent")
	case opts.description != "":
		return errors.New("--description does not go with --engines: each context says which catalog it came from")
	}
	return catalog.CheckPrefix(opts.prefix)
}

// printSynced is the table of what enroll --engines did for each engine,
// with what verify said of each context made.
func printSynced(out io.Writer, results []catalog.Result, checks map[string]string) error {
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "CONTEXT\tENGINE\tROLE\tHOST\tRESULT")
	for _, r := range results {
		res := r.Outcome
		if r.Note != "" {
			res += " (" + r.Note + ")"
		}
		if c := checks[r.Context]; c != "" {
			res += ", " + c
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Context, r.Engine, r.Role, r.Host, res)
	}
	return tw.Flush()
}

// verifyMade runs docker tls verify's checks on the contexts made or
// updated, 8 at a time, and returns what to say of each: "verified", or
// the first failure. A failing engine keeps its context: the others do
// not depend on it, and it may only be down for now.
func (a *app) verifyMade(ctx context.Context, results []catalog.Result, timeout time.Duration) map[string]string {
	out := map[string]string{}
	var targets []probe.Target
	for _, r := range results {
		if r.Outcome == catalog.Skipped {
			continue
		}
		t, err := a.contextTarget(r.Context)
		if err != nil {
			out[r.Context] = "not verified: " + err.Error()
			continue
		}
		targets = append(targets, t)
	}
	for i, rep := range probe.RunAll(ctx, targets, probe.Options{Timeout: timeout}, 8) {
		out[targets[i].Name] = "verified"
		if rep.Worst() == probe.Fail {
			first := rep.First(probe.Fail)
			out[targets[i].Name] = fmt.Sprintf("verify failed (%s: %s)", first.ID, first.Message)
		}
	}
	return out
}
