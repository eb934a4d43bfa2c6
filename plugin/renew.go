package plugin

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
)

type renewOptions struct {
	all        bool
	within     string
	rekey      bool
	dryRun     bool
	days       int
	passphrase passphraseOptions
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
	if ctx == nil {
		ctx = context.Background()
	}
	within, err := parseSpan(opts.within)
	if err != nil {
		return fmt.Errorf("--within %w", err)
	}
	if _, err := lifetime(opts.days); err != nil {
		return err
	}
	store := a.contexts()
	var targets []*contexts.Context
	switch {
	case opts.all && len(names) > 0:
		return errors.New("give context names or --all, not both")
	case opts.all:
		list, _, err := store.List()
		if err != nil {
			return err
		}
		for _, c := range list {
			if c.Managed() && time.Until(c.TLS.NotAfter) <= within {
				targets = append(targets, c)
			}
		}
		if len(targets) == 0 {
			fmt.Fprintf(a.cli.Out(), "Nothing expires within %s\n", opts.within)
			return nil
		}
	case len(names) == 0:
		return errors.New("name the contexts to renew, or use --all")
	default:
		for _, n := range names {
			c, err := a.contexts().Managed(n)
			if err != nil {
				return err
			}
			targets = append(targets, c)
		}
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

// renewFromService renews an enrolled context's certificate at its CA
// service, authenticated by the certificate it has (so only while that is
// valid), and returns the CAs the service answers with.
func renewFromService(ctx context.Context, c *contexts.Context, trust []*x509.Certificate, old *x509.Certificate, oldKey, key crypto.Signer) (*x509.Certificate, []*x509.Certificate, error) {
	if time.Now().After(old.NotAfter) {
		return nil, nil, fmt.Errorf("the certificate expired on %s, so it cannot authenticate a renewal: get a new token (docker tls ca token) and run docker tls enroll %s --force --ca-url %s --token …",
			old.NotAfter.Format("2006-01-02"), c.Name, c.TLS.CAURL)
	}
	csr, err := pki.NewCSR(key, old.Subject.CommonName, pki.SANs{})
	if err != nil {
		return nil, nil, err
	}
	client := &remoteca.Client{URL: c.TLS.CAURL}
	current := tls.Certificate{Certificate: [][]byte{old.Raw}, PrivateKey: oldKey, Leaf: old}
	return client.RenewTrusting(ctx, trust, current, csr)
}

// renewFromCA issues a context's new certificate from the local CA it came
// from: the same subject and lifetime (or --days), for key.
func (a *app) renewFromCA(c *contexts.Context, trust []*x509.Certificate, old *x509.Certificate, key crypto.Signer, opts renewOptions) (*x509.Certificate, error) {
	stored, ca, err := a.loadCA(c.TLS.CA, opts.passphrase)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(trust, stored.Cert.Equal) {
		return nil, fmt.Errorf("the local CA %q is not the CA in the context any more (it was re-created?): re-create the context with docker tls context create --force", c.TLS.CA)
	}
	// During a rotation, a context that already trusts the new CA renews
	// from it, so that the renewal does not undo phase 3.
	if stored.NextCert != nil && slices.ContainsFunc(trust, stored.NextCert.Equal) {
		pass, err := opts.passphrase.read()
		if err != nil {
			return nil, err
		}
		if ca, err = a.cas().NextSigner(stored, pass); err != nil {
			return nil, err
		}
	}
	life := old.NotAfter.Sub(old.NotBefore) - pki.Backdate
	if opts.days > 0 {
		life = time.Duration(opts.days) * 24 * time.Hour
	}
	return ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: old.Subject.CommonName, PublicKey: key.Public(), Lifetime: life})
}

// checkRenewed checks a new certificate before it is swapped in: it
// chains to one of the CAs the context will trust, and is for key.
func checkRenewed(cert *x509.Certificate, key crypto.Signer, trust []*x509.Certificate) error {
	verr := errors.New("the context trusts no CA")
	for _, ca := range trust {
		if verr = pki.VerifyLeaf(cert, ca, pki.ClientProfile, time.Now()); verr == nil {
			break
		}
	}
	if verr != nil {
		return verr
	}
	return pki.CheckKeyMatch(cert, key)
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

// renewOne re-issues one context's certificate and swaps it in. Everything
// that can fail happens before the swap.
func (a *app) renewOne(ctx context.Context, c *contexts.Context, opts renewOptions) (*x509.Certificate, error) {
	// Another command may change the context's key between the read and
	// this renewal (a concurrent rekey, migrate or lock): then renew the
	// context as it is now, a few times at most.
	for attempt := 0; ; attempt++ {
		cert, err := a.renewOnce(ctx, c, opts)
		if !errors.Is(err, keystore.ErrNotFound) || attempt == 4 {
			return cert, err
		}
		now, gerr := a.contexts().Get(c.Name)
		if gerr != nil || now.KeyOf() == c.KeyOf() {
			return cert, err
		}
		c = now
	}
}

func (a *app) renewOnce(ctx context.Context, c *contexts.Context, opts renewOptions) (*x509.Certificate, error) {
	store := a.contexts()
	caPEM, certPEM, err := store.PEMs(c)
	if err != nil {
		return nil, err
	}
	// One CA, or the bundle of a context that followed a rotation.
	trust, err := pki.ParseCertificates(caPEM)
	if err != nil {
		return nil, fmt.Errorf("ca.pem: %w", err)
	}
	if len(trust) == 0 {
		return nil, errors.New("ca.pem holds no certificate")
	}
	old, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("cert.pem: %w", err)
	}
	ks, err := a.keyStore(c.TLS.KeyStore, nil)
	if err != nil {
		return nil, err
	}
	oldKey, err := ks.Get(c.TLS.KeyID)
	if err != nil {
		return nil, err
	}
	key := oldKey
	if opts.rekey {
		kt, err := pki.KeyTypeOf(oldKey.Public())
		if err != nil {
			return nil, err
		}
		if key, err = pki.GenerateKey(kt); err != nil {
			return nil, err
		}
	}
	var cert *x509.Certificate
	// trust is what the new certificate must chain to: the context's
	// bundle, or the one the CA service answers with (during a rotation:
	// the old and the new CA), which the context then trusts.
	var newTrust []byte
	switch {
	case c.TLS.CAURL != "":
		var bundle []*x509.Certificate
		if cert, bundle, err = renewFromService(ctx, c, trust, old, oldKey, key); err != nil {
			return nil, err
		}
		var pemBundle []byte
		for _, b := range bundle {
			pemBundle = append(pemBundle, pki.EncodeCertificate(b)...)
		}
		if string(pemBundle) != string(caPEM) {
			trust, newTrust = bundle, pemBundle
		}
	case c.TLS.CA != "":
		if cert, err = a.renewFromCA(c, trust, old, key, opts); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("this context's certificate was imported, so docker tls does not know its CA: renew it where it was issued, then docker tls import --force")
	}
	if err := checkRenewed(cert, key, trust); err != nil {
		return nil, err
	}
	if newTrust != nil {
		// The new trust first: harmless with the old certificate, and
		// needed by the new one's engines.
		if c, err = a.contexts().Retrust(c, newTrust, nil); err != nil {
			return nil, err
		}
	}
	if _, err := a.contexts().Renew(c, cert, key, opts.rekey); err != nil {
		return nil, err
	}
	if c.AgentMode() {
		_, _, _ = agent.Call(a.agentDir(), "reload") // the agent rereads the certificate
	}
	return cert, nil
}
