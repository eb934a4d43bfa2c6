package plugin

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/rotation"
)

type caRotateOptions struct {
	name       string
	status     bool
	cont       bool
	abort      bool
	keepOld    bool
	parallel   int
	wait       time.Duration
	format     string
	exclude    []string
	db         dbOptions
	passphrase passphraseOptions
}

func newCARotateCommand(a *app) *cobra.Command {
	var opts caRotateOptions
	cmd := &cobra.Command{
		Use:   "rotate NAME [--status | --continue | --abort]",
		Short: "Replace a CA on every engine and context issued from it, with no connection failing for a TLS reason",
		Long: `Replace CA NAME with a new one (a new key) across every engine docker tls
engine setup made from it and every context issued from it, in phases that
each complete everywhere before the next begins:

  1. a new CA is made beside the old one;
  2. every context, then every engine, trusts both (dockerd and the docker
     CLI accept a bundle of CAs; an engine restarts, with engine setup's
     restart safety and rollback);
  3. every engine, then every context, gets a certificate from the new CA;
  4. every engine, then every context, trusts the new CA alone; then the
     old CA's key is deleted (--keep-old keeps it, marked retired).

Progress is recorded after every step ($DOCKER_CONFIG/tls/rotations/NAME.json):
--status shows it, --continue resumes after any interruption (a crash, an
engine that could not be reached: it is named, with the fix), and --abort
walks everything back to the old CA until phase 4 has begun.

Contexts issued from NAME for engines docker tls did not set up are left
alone and listed with the commands their owners run.

Laptops enrolled through docker tls ca serve follow without a token: while
the rotation runs, the service (which rereads the CA every few seconds)
renews a certificate of the old CA at once, from the new CA, and answers
with both CAs; docker tls renew (or the agent) stores both. --exclude CN
revokes an identity in the service's database first (a lost laptop): it
cannot renew, and its old certificate stops working at phase 4.`,
		Example: `  docker tls ca rotate default
  docker tls ca rotate default --status
  docker tls ca rotate default --continue
  docker tls ca rotate default --abort
  docker tls ca rotate team --exclude alice@lost-laptop`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = args[0]
			return runCARotate(cmd.Context(), a, opts)
		},
		ValidArgsFunction: completeCANames(a),
	}
	f := cmd.Flags()
	f.BoolVar(&opts.status, "status", false, "Show the rotation's progress, per engine and context")
	f.BoolVar(&opts.cont, "continue", false, "Resume a rotation that stopped")
	f.BoolVar(&opts.abort, "abort", false, "Go back to the old CA (before phase 4)")
	f.BoolVar(&opts.keepOld, "keep-old", false, "Keep the old CA's key in the key store, marked retired")
	f.IntVar(&opts.parallel, "parallel", 4, "How many engines to change at once, 1 to 64")
	f.DurationVar(&opts.wait, "wait", 30*time.Second, "How long dockerd may take to serve TLS after a restart before the change is rolled back")
	f.StringVar(&opts.format, "format", "", "With --status: json")
	f.StringArrayVar(&opts.exclude, "exclude", nil, "Leave this identity (CN) out: revoked at the CA service, it cannot renew to the new CA (repeatable)")
	opts.db.install(f)
	opts.passphrase.install(f)
	return cmd
}

func (a *app) rotations() rotation.Records {
	return rotation.Records{Dir: filepath.Join(a.stateDir(), "rotations")}
}

func runCARotate(ctx context.Context, a *app, opts caRotateOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	n := 0
	for _, b := range []bool{opts.status, opts.cont, opts.abort} {
		if b {
			n++
		}
	}
	switch {
	case n > 1:
		return errors.New("give one of --status, --continue and --abort")
	case opts.format != "" && !opts.status:
		return errors.New("--format goes with --status")
	case opts.format != "" && opts.format != "json":
		return fmt.Errorf("--format %q: use json", opts.format)
	}
	if err := checkParallel(opts.parallel); err != nil {
		return err
	}
	if err := checkWait(opts.wait); err != nil {
		return err
	}
	recs := a.rotations()
	st, err := recs.Get(opts.name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if opts.status {
		if st == nil {
			fmt.Fprintf(a.cli.Out(), "No rotation of CA %q in progress\n", opts.name)
			return nil
		}
		return printRotation(a, st, opts.format)
	}
	// Refusals first, before the lock file or anything else is made.
	if _, err := a.cas().Get(opts.name); err != nil {
		return err
	}
	if st == nil && (opts.cont || opts.abort) {
		return fmt.Errorf("no rotation of CA %q in progress (start one with docker tls ca rotate %s)", opts.name, opts.name)
	}
	release, err := recs.Lock(opts.name)
	if err != nil {
		return err
	}
	defer release()
	if st, err = recs.Get(opts.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	switch {
	case st == nil && (opts.cont || opts.abort):
		return fmt.Errorf("no rotation of CA %q in progress (start one with docker tls ca rotate %s)", opts.name, opts.name)
	case st != nil && !opts.cont && !opts.abort:
		return fmt.Errorf("a rotation of CA %q is in progress (phase %d: %s): docker tls ca rotate %s --continue, or --abort", opts.name, st.Phase, st.Phase, opts.name)
	case st == nil:
		if st, err = a.planRotation(opts.name, opts.keepOld); err != nil {
			return err
		}
		// The record first: a crash from here on is found by --continue
		// or --abort, whatever state the CA is in.
		if err := recs.Put(st); err != nil {
			return err
		}
	}
	save := func(s *rotation.State) error { return recs.Put(s) }
	if len(opts.exclude) > 0 && !opts.abort {
		if err := a.excludeFromRotation(ctx, st, opts); err != nil {
			return err
		}
	}
	if opts.abort {
		return a.abortRotation(ctx, st, opts, save)
	}
	if opts.keepOld {
		st.KeepOld = true
	}
	ex, err := a.startRotation(st, opts, save)
	if err != nil {
		return err
	}
	out := a.cli.Out()
	fmt.Fprintf(out, "Rotating CA %q: %s -> %s\n", st.CA, short(st.OldFingerprint), short(st.NewFingerprint))
	if err := rotation.Run(ctx, st, ex, save, opts.parallel); err != nil {
		var pe *rotation.PhaseError
		if errors.As(err, &pe) {
			return fmt.Errorf("%w\nfix the cause, then: docker tls ca rotate %s --continue (or --abort before phase 4)", err, st.CA)
		}
		return err
	}
	done, err := a.cas().FinishRotation(st.CA, st.KeepOld)
	if err != nil {
		return fmt.Errorf("every engine and context uses the new CA, but retiring the old one failed: %w (run --continue)", err)
	}
	if err := recs.Remove(st.CA); err != nil {
		return err
	}
	engines, ctxs := 0, 0
	for _, t := range st.Targets {
		if t.Kind == rotation.Engine {
			engines++
		} else {
			ctxs++
		}
	}
	kept := "deleted"
	if st.KeepOld {
		kept = "kept in the key store, marked retired"
	}
	fmt.Fprintf(out, "Rotated CA %q: %d engine(s) and %d context(s) use %s; the old CA's key was %s\n", st.CA, engines, ctxs, short(pki.Fingerprint(done.Cert)), kept)
	printOutside(a, st)
	return nil
}

// notRotating refuses to set up a new context or engine from a CA that is
// being rotated: the rotation's plan was made before it, so phase 4 would
// leave it trusting a retired CA.
func notRotating(ca *castore.CA) error {
	if ca.NextCert == nil {
		return nil
	}
	return fmt.Errorf("CA %q is being rotated: finish the rotation first (docker tls ca rotate %s --continue, or --abort), then run this again", ca.Name, ca.Name)
}

func short(fp string) string {
	if len(fp) > 23 {
		return fp[:23] + "…"
	}
	return fp
}

// planRotation lists what a rotation of name moves: the engines set up from
// it, the contexts of those engines and every other context issued from it
// whose engine is one of them; contexts for other engines are left alone.
func (a *app) planRotation(name string, keepOld bool) (*rotation.State, error) {
	stored, err := a.cas().Get(name)
	if err != nil {
		return nil, err
	}
	// A CA with a new one beside it and no record (a crash right after
	// StartRotation, the record since lost) rotates to that one:
	// StartRotation keeps the new CA it has.
	fp := pki.Fingerprint(stored.Cert)
	now := time.Now().UTC()
	st := &rotation.State{CA: name, OldFingerprint: fp, KeepOld: keepOld, Started: now, Updated: now}
	engRecs, _, err := a.engines().List()
	if err != nil {
		return nil, err
	}
	hosts := map[string]bool{}
	for _, r := range engRecs {
		if r.CA != name || r.CAFingerprint != fp || r.Status != engine.StatusReady {
			continue
		}
		st.Targets = append(st.Targets, &rotation.Target{Kind: rotation.Engine, Name: r.Name})
		hosts[r.Host] = true
	}
	list, _, err := a.contexts().List()
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		if !c.Managed() || c.TLS.CA != name || c.TLS.CAFingerprint != fp {
			continue
		}
		host := c.Host
		if c.AgentMode() {
			host = c.TLS.Remote
		}
		if hosts[host] {
			st.Targets = append(st.Targets, &rotation.Target{Kind: rotation.Context, Name: c.Name})
			continue
		}
		st.Outside = append(st.Outside, rotation.Outside{Context: c.Name, Host: host, Commands: []string{
			fmt.Sprintf("after the rotation, on the engine at %s: install a server certificate from the new CA (docker tls server issue HOST --ca %s --out DIR), use the new ca.pem as --tlscacert, restart dockerd", host, name),
			fmt.Sprintf("then here: docker tls context create %s --host %s --issue --ca %s --force", c.Name, host, name),
		}})
	}
	return st, nil
}

// dateSuffix is what a rotation adds to the CA's name: the day and the
// start of the new key's identifier, so two CAs of one name never share
// a subject (people, and openssl's error messages, tell them apart).
var dateSuffix = regexp.MustCompile(` \(\d{4}-\d{2}-\d{2}[^)]*\)$`)

// startRotation makes the new CA (phase 1), once, and returns what
// carries out the next phases. The CA's key is read once: a passphrase
// asked for at the prompt opens the new CA's key too.
func (a *app) startRotation(st *rotation.State, opts caRotateOptions, save func(*rotation.State) error) (*rotator, error) {
	stored, ca, pass, err := a.loadCAPassphrase(st.CA, opts.passphrase)
	if err != nil {
		return nil, err
	}
	if st.Phase >= rotation.Started && stored.NextCert != nil {
		return a.newRotator(stored, ca, pass, opts.wait)
	}
	kt, err := pki.KeyTypeOf(ca.Key.Public())
	if err != nil {
		return nil, err
	}
	key, err := pki.GenerateKey(kt)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	ski, err := pki.SubjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	cn := fmt.Sprintf("%s (%s, %x)", dateSuffix.ReplaceAllString(stored.Cert.Subject.CommonName, ""), now.Format("2006-01-02"), ski[:2])
	var org string
	if len(stored.Cert.Subject.Organization) > 0 {
		org = stored.Cert.Subject.Organization[0]
	}
	next, err := pki.NewCA(key, pki.CAOptions{CommonName: cn, Organization: org, Now: now})
	if err != nil {
		return nil, err
	}
	if stored, err = a.cas().StartRotation(st.CA, next, pass, now); err != nil {
		return nil, err
	}
	st.NewFingerprint = pki.Fingerprint(stored.NextCert)
	st.Phase = rotation.Started
	for _, t := range st.Targets {
		t.Done = rotation.Started
	}
	if err := save(st); err != nil {
		return nil, err
	}
	return a.newRotator(stored, ca, pass, opts.wait)
}

// excludeFromRotation revokes identities at the CA's service, before any
// laptop can renew to the new CA.
func (a *app) excludeFromRotation(ctx context.Context, st *rotation.State, opts caRotateOptions) error {
	_, db, err := opts.db.openCA(ctx, a, st.CA)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, cn := range opts.exclude {
		rev, err := db.RevokeName(ctx, cn, "excluded from the rotation of CA "+st.CA, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(a.cli.Out(), "Excluded %q: revoked at the CA service (%d certificate(s)); its certificate stops working when the old CA is retired\n", cn, len(rev.Certificates))
	}
	return nil
}

// abortRotation walks every target back and drops the new CA.
func (a *app) abortRotation(ctx context.Context, st *rotation.State, opts caRotateOptions, save func(*rotation.State) error) error {
	stored, ca, pass, err := a.loadCAPassphrase(st.CA, opts.passphrase)
	if err != nil {
		return err
	}
	if stored.NextCert != nil {
		ex, err := a.newRotator(stored, ca, pass, opts.wait)
		if err != nil {
			return err
		}
		if err := rotation.Abort(ctx, st, ex, save, opts.parallel); err != nil {
			return fmt.Errorf("%w\nfix the cause, then: docker tls ca rotate %s --abort", err, st.CA)
		}
	}
	if _, err := a.cas().AbortRotation(st.CA); err != nil {
		return err
	}
	if err := a.rotations().Remove(st.CA); err != nil {
		return err
	}
	fmt.Fprintf(a.cli.Out(), "Aborted the rotation of CA %q: every engine and context trusts and uses the old CA again; the new CA's key was deleted\n", st.CA)
	return nil
}

// rotator carries out the steps on engines and contexts.
type rotator struct {
	a        *app
	stored   *castore.CA
	old, new *pki.CA
	wait     time.Duration
}

// newRotator pairs the loaded old CA with the rotation's new one, whose key
// is in the same kind of store under the same passphrase.
func (a *app) newRotator(stored *castore.CA, old *pki.CA, pass []byte, wait time.Duration) (*rotator, error) {
	next, err := a.cas().NextSigner(stored, pass)
	if err != nil {
		return nil, err
	}
	return &rotator{a: a, stored: stored, old: old, new: next, wait: wait}, nil
}

func (r *rotator) bundle() []byte {
	return append(pki.EncodeCertificate(r.old.Cert), pki.EncodeCertificate(r.new.Cert)...)
}

// Apply brings one target to a phase.
func (r *rotator) Apply(ctx context.Context, t *rotation.Target, to rotation.Phase) error {
	if t.Kind == rotation.Engine {
		switch to {
		case rotation.TrustBoth:
			return r.engine(ctx, t.Name, r.bundle(), nil)
		case rotation.Reissued:
			return r.engine(ctx, t.Name, r.bundle(), r.new)
		case rotation.Retired:
			return r.engine(ctx, t.Name, pki.EncodeCertificate(r.new.Cert), nil)
		}
	}
	switch to {
	case rotation.TrustBoth:
		return r.context(t.Name, r.bundle(), nil)
	case rotation.Reissued:
		return r.context(t.Name, r.bundle(), r.new)
	case rotation.Retired:
		return r.context(t.Name, pki.EncodeCertificate(r.new.Cert), nil)
	}
	return fmt.Errorf("no step to phase %d", to)
}

// Revert takes one target back a phase.
func (r *rotator) Revert(ctx context.Context, t *rotation.Target, from rotation.Phase) error {
	if t.Kind == rotation.Engine {
		if from == rotation.Reissued {
			return r.engine(ctx, t.Name, r.bundle(), r.old)
		}
		return r.engine(ctx, t.Name, pki.EncodeCertificate(r.old.Cert), nil)
	}
	if from == rotation.Reissued {
		return r.context(t.Name, r.bundle(), r.old)
	}
	return r.context(t.Name, pki.EncodeCertificate(r.old.Cert), nil)
}

// context makes a context trust caPEM and, with issuer, hold a new client
// certificate from it for the same key, subject and lifetime.
func (r *rotator) context(name string, caPEM []byte, issuer *pki.CA) error {
	store := r.a.contexts()
	c, err := store.Get(name)
	if err != nil {
		return err
	}
	var cert *x509.Certificate
	if issuer != nil {
		_, certPEM, err := contextPEMs(store, c)
		if err != nil {
			return err
		}
		old, err := pki.ParseCertificate(certPEM)
		if err != nil {
			return err
		}
		life := old.NotAfter.Sub(old.NotBefore) - pki.Backdate
		if left := time.Until(issuer.Cert.NotAfter) - time.Hour; life > left {
			life = left
		}
		if cert, err = issuer.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: old.Subject.CommonName, PublicKey: old.PublicKey, Lifetime: life}); err != nil {
			return err
		}
	}
	_, err = store.Retrust(c, caPEM, cert)
	return err
}

// engine makes an engine trust caPEM and, with issuer, serve a new
// certificate from it; dockerd restarts (restart safety and rollback as
// engine renew), and the engine is checked through its context.
func (r *rotator) engine(ctx context.Context, name string, caPEM []byte, issuer *pki.CA) error {
	a := r.a
	rec, err := a.engines().Get(name)
	if err != nil {
		return engineNotFound(err, name)
	}
	s, err := a.dialEngine(ctx, rec)
	if err != nil {
		return err
	}
	defer s.Close()
	facts, err := engine.Inspect(ctx, s, rec.Port, rec.TLSDir)
	if err != nil {
		return err
	}
	sans, _, err := pki.ParseSANs(rec.SANs)
	if err != nil {
		return err
	}
	planCA := r.old.Cert
	if issuer != nil {
		planCA = issuer.Cert
	}
	plan, err := engine.PlanSetup(facts, engine.Request{Port: rec.Port, TLSDir: rec.TLSDir, CA: planCA, SANs: sans, Reissue: true, Now: time.Now()})
	if err != nil {
		return err
	}
	target, err := a.contextTarget(a.contexts(), rec.Context)
	if err != nil {
		return fmt.Errorf("context %s, used to check the engine after its restart: %w", rec.Context, err)
	}
	paths := engine.TLSPathsIn(rec.TLSDir)
	files := []engine.File{{Path: paths.CA, Data: caPEM, Mode: 0o644}}
	serial, notAfter := rec.Serial, rec.NotAfter
	if issuer != nil {
		issued, cert, err := engine.ServerFiles(issuer, sans, 0, rec.TLSDir)
		if err != nil {
			return err
		}
		for _, f := range issued {
			if f.Path != paths.CA {
				files = append(files, f)
			}
		}
		serial, notAfter = engine.Serial(cert), cert.NotAfter
	}
	cas, err := pki.ParseCertificates(caPEM)
	if err != nil {
		return err
	}
	fp := pki.Fingerprint(cas[len(cas)-1])
	if len(cas) > 1 {
		fp = rec.CAFingerprint // trusting both: still recorded as the old CA's until phase 4
	}
	change := engine.Change{Plan: plan, TLSDir: rec.TLSDir, ReadyTimeout: r.wait, Verify: engineCheck(target), ServerFiles: files,
		State: engine.HostState{SetupBy: "docker-tls", Mode: plan.Mode, Port: rec.Port, TLSDir: rec.TLSDir,
			CAFingerprint: fp, Serial: serial, NotAfter: notAfter, Updated: time.Now().UTC()}}
	if err := engine.Apply(ctx, s, change); err != nil {
		return err
	}
	rec.Serial, rec.NotAfter, rec.CAFingerprint, rec.Updated = serial, notAfter, fp, time.Now().UTC()
	return a.engines().Put(rec)
}

func printRotation(a *app, st *rotation.State, format string) error {
	out := a.cli.Out()
	if format == "json" {
		return printJSON(out, st)
	}
	state := "in progress"
	if st.Aborting {
		state = "being aborted"
	}
	fmt.Fprintf(out, "Rotation of CA %q (%s), started %s: phase %d of 4 complete (%s)\n", st.CA, state, st.Started.Local().Format(time.RFC3339), st.Phase, st.Phase)
	fmt.Fprintf(out, "  old CA %s\n  new CA %s\n", st.OldFingerprint, st.NewFingerprint)
	for _, t := range st.Targets {
		line := fmt.Sprintf("  %-8s %-24s phase %d (%s)", t.Kind, t.Name, t.Done, t.Done)
		if t.Error != "" {
			line += "  LAST ERROR: " + strings.SplitN(t.Error, "\n", 2)[0]
		}
		fmt.Fprintln(out, line)
	}
	printOutside(a, st)
	return nil
}

func printOutside(a *app, st *rotation.State) {
	if len(st.Outside) == 0 {
		return
	}
	fmt.Fprintf(a.cli.Out(), "Left alone (their engines were not set up by docker tls):\n")
	for _, o := range st.Outside {
		fmt.Fprintf(a.cli.Out(), "  context %s (%s):\n", o.Context, o.Host)
		for _, c := range o.Commands {
			fmt.Fprintf(a.cli.Out(), "    - %s\n", c)
		}
	}
}
