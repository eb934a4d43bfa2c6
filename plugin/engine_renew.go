package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/probe"
)

type engineRenewOptions struct {
	names      []string
	all        bool
	within     string
	parallel   int
	days       int
	wait       time.Duration
	passphrase passphraseOptions
}

func newEngineRenewCommand(a *app) *cobra.Command {
	var opts engineRenewOptions
	cmd := &cobra.Command{
		Use:   "renew NAME... | --all [--within 30d]",
		Short: "Give engines new server certificates, restarting dockerd safely",
		Long: `Issue a new server certificate for each engine (same names, same CA), install
it on the host and restart dockerd, with the restart safety and rollback of
engine setup: running containers keep running, and if dockerd does not come
back serving TLS the previous files are put back. dockerd reads its
certificate only when it starts, hence the restart.

Engines are renewed concurrently, --parallel at a time; one failing does not
stop the others. With --within, only certificates that expire within that
time are renewed.`,
		Example: `  docker tls engine renew build-1
  docker tls engine renew --all --within 30d
  docker tls engine renew --all --parallel 8`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.names = args
			return runEngineRenew(cmd.Context(), a, opts)
		},
		ValidArgsFunction: completeEngineNames(a),
	}
	f := cmd.Flags()
	f.BoolVar(&opts.all, "all", false, "Every engine docker tls set up")
	f.StringVar(&opts.within, "within", "", "Only certificates that expire within this span (30d, 2w, 12h)")
	f.IntVar(&opts.parallel, "parallel", 4, "How many engines to renew at once, 1 to 64")
	addDaysFlag(f, &opts.days, fmt.Sprint(int(pki.DefaultServerLifetime.Hours()/24)))
	f.DurationVar(&opts.wait, "wait", 30*time.Second, "How long dockerd may take to serve TLS after its restart before the change is rolled back")
	opts.passphrase.install(f)
	return cmd
}

func runEngineRenew(ctx context.Context, a *app, opts engineRenewOptions) error {
	if err := checkEngineSelection(opts.names, opts.all, opts.parallel, "renew"); err != nil {
		return err
	}
	if err := checkWait(opts.wait); err != nil {
		return err
	}
	var within time.Duration
	if opts.within != "" {
		var err error
		if within, err = parseSpan(opts.within); err != nil {
			return fmt.Errorf("--within %w", err)
		}
	}
	life, err := lifetime(opts.days)
	if err != nil {
		return err
	}
	if life == 0 {
		life = pki.DefaultServerLifetime
	}
	recs, err := a.engineRecords(opts.names, opts.all)
	if err != nil {
		return err
	}
	cas, err := a.engineCAs(recs, opts.passphrase)
	if err != nil {
		return err
	}

	failed := a.eachEngine(ctx, recs, opts.parallel, func(ctx context.Context, rec *engine.Record) (string, error) {
		ca := cas[rec.CA]
		return a.renewEngine(ctx, rec, a.recorded(ctx, ca.stored, ca.ca, "engine "+rec.Name), within, life, opts.wait)
	})
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d engines were not renewed", len(failed), len(recs))
	}
	return nil
}

// engineCAs loads the CA of each engine once, before any engine is
// touched, so a passphrase is asked at most once; an engine whose CA is
// being rotated or was re-created is refused.
func (a *app) engineCAs(recs []*engine.Record, pp passphraseOptions) (map[string]loadedCA, error) {
	cas := map[string]loadedCA{}
	for _, r := range recs {
		if _, ok := cas[r.CA]; ok {
			continue
		}
		stored, ca, err := a.loadCA(r.CA, pp)
		if err != nil {
			return nil, fmt.Errorf("engine %s: %w", r.Name, err)
		}
		if stored.NextCert != nil {
			return nil, fmt.Errorf("engine %s: CA %q is being rotated, which re-issues every engine's certificate: finish it first (docker tls ca rotate %s --continue)", r.Name, r.CA, r.CA)
		}
		if pki.Fingerprint(stored.Cert) != r.CAFingerprint {
			return nil, fmt.Errorf("engine %s was set up with another CA %q than the one now named so (fingerprints differ): run docker tls engine setup %s --force", r.Name, r.CA, r.Dest)
		}
		cas[r.CA] = loadedCA{stored, ca}
	}
	return cas, nil
}

// loadedCA is a CA as stored and with its key.
type loadedCA struct {
	stored *castore.CA
	ca     *pki.CA
}

// renewEngine renews one engine's server certificate.
func (a *app) renewEngine(ctx context.Context, rec *engine.Record, ca pki.Issuer, within, life, wait time.Duration) (string, error) {
	if within > 0 && time.Until(rec.NotAfter) > within {
		return "not due (server certificate valid until " + rec.NotAfter.Format("2006-01-02") + ")", nil
	}
	s, err := a.dialEngine(ctx, rec)
	if err != nil {
		return "", err
	}
	defer s.Close()
	target, err := a.contextTarget(rec.Context)
	if err != nil {
		return "", fmt.Errorf("context %s, used to check the engine after its restart: %w", rec.Context, err)
	}
	done, err := a.engines().Reissue(ctx, s, rec, engine.Reissue{Issuer: ca, Lifetime: life, ReadyTimeout: wait, Verify: probe.ServesAPI(target)})
	if err != nil {
		return "", engineHint(err, rec.Name)
	}
	kept := ""
	if done.KeptRunning {
		kept = fmt.Sprintf(", %d running containers kept running", done.Running)
	}
	serial, cert := done.Record.Serial, done.Cert
	return fmt.Sprintf("renewed, serial %s, valid until %s (dockerd restarted%s)", serial, cert.NotAfter.Format("2006-01-02"), kept), nil
}
