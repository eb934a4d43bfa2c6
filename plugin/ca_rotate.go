package plugin

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/internal/suggest"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
	"github.com/docker-tls/docker-tls/rotation"
)

type caRotateOptions struct {
	name       string
	status     bool
	cont       bool
	abort      bool
	keepOld    bool
	finishNow  bool
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
with both CAs; docker tls renew (or the agent) stores both. ca rotate
counts them first, and after phase 2 waits for every one still holding a
valid certificate of the old CA (until it renews it trusts the old CA
alone, and would refuse an engine's certificate from the new one): it
stops, names them, and --continue goes on once they have renewed (an
agent notices within its --ca-check, 5 minutes by default; a laptop
without one at its next docker tls renew); it checks again before phase
4. --finish-now goes on anyway, naming who must enroll again.
This machine's own contexts, enrolled or not, are renewed by the
rotation itself.

--exclude CN revokes an identity in the service's database first (a lost
laptop): it cannot renew, and its old certificate stops working at phase
4. The CN must be one the service issued a certificate or a token to.`,
		Example: `  docker tls ca rotate default
  docker tls ca rotate default --status
  docker tls ca rotate default --continue
  docker tls ca rotate default --continue --finish-now
  docker tls ca rotate default --abort
  docker tls ca rotate team --exclude alice@lost-laptop --db env:CA_DB`,
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
	f.BoolVar(&opts.finishNow, "finish-now", false, "Retire the old CA even while laptops enrolled through the CA service have not renewed to the new one (they must enroll again)")
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
	if err := checkRotateFlags(opts); err != nil {
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
		return printRotation(ctx, a, st, opts)
	}
	// Every refusal comes before anything is written, the lock file and
	// the record included: a record left by a refused run would turn the
	// next --continue into a rotation nobody asked for. So the CA's key is
	// opened (a wrong passphrase refused) and the identities to exclude
	// are found in the service's database here.
	if _, err := a.cas().Get(opts.name); err != nil {
		return err
	}
	if err := rotationAllows(st, opts); err != nil {
		return err
	}
	ca, err := a.loadRotatingCA(opts.name, opts.passphrase)
	if err != nil {
		return err
	}
	if err := a.checkServiceDB(ctx, ca.stored, opts); err != nil {
		return err
	}

	release, err := recs.Lock(opts.name)
	if err != nil {
		return err
	}
	defer release()
	// Under the lock, what another run may have done meanwhile.
	if st, err = recs.Get(opts.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := rotationAllows(st, opts); err != nil {
		return err
	}
	if ca, err = a.reloadIfChanged(ca); err != nil {
		return err
	}
	save := func(s *rotation.State) error { return recs.Put(s) }
	switch {
	case st == nil:
		if st, err = a.planRotation(opts.name, opts.keepOld); err != nil {
			return err
		}
		st.Exclude = opts.exclude
		// The record first: a crash from here on is found by --continue
		// or --abort, whatever state the CA is in.
		if err := save(st); err != nil {
			return err
		}
	case addExclusions(st, opts.exclude):
		if err := save(st); err != nil {
			return err
		}
	}
	if opts.abort {
		return a.abortRotation(ctx, st, ca, opts, save)
	}
	// Excluded identities are revoked before any phase runs, so that none
	// of them can renew to the new CA; recorded first, so that a run
	// stopped in between revokes them when continued.
	if len(st.Exclude) > 0 && !st.Excluded {
		if err := a.applyExclusions(ctx, st, ca.stored, opts); err != nil {
			return err
		}
		st.Excluded = true
		if err := save(st); err != nil {
			return err
		}
	}
	if opts.keepOld {
		st.KeepOld = true
	}
	ex, err := a.startRotation(st, ca, opts, save)
	if err != nil {
		return err
	}
	defer ex.close()
	out := a.cli.Out()
	fmt.Fprintf(out, "Rotating CA %q: %s -> %s\n", st.CA, short(st.OldFingerprint), short(st.NewFingerprint))
	if !rotation.RetireBegun(st) {
		left, err := laptopsOnOldCA(ctx, ex.db, st, ca.stored.Cert)
		if err != nil {
			return err
		}
		if len(left) > 0 {
			fmt.Fprintf(out, "%s enrolled through docker tls ca serve will follow: each renews to the new CA through the service\n", countLaptops(len(left)))
		}
	}
	if err := rotation.Run(ctx, st, ex, save, opts.parallel); err != nil {
		var we *rotation.WaitError
		if errors.As(err, &we) {
			printWaiting(a, st, we)
			return nil
		}
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

// checkRotateFlags refuses flags that do not go together, and excluded
// names that no certificate could carry.
func checkRotateFlags(opts caRotateOptions) error {
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
	case opts.abort && len(opts.exclude) > 0:
		return errors.New("--exclude goes with a rotation or --continue, not --abort (an identity is revoked with docker tls ca revoke)")
	case opts.finishNow && (opts.abort || opts.status):
		return errors.New("--finish-now goes with a rotation or --continue, not --abort or --status")
	}
	for _, cn := range opts.exclude {
		if strings.TrimSpace(cn) == "" {
			return errors.New("--exclude needs a CN: docker tls ca issued ls lists who enrolled")
		}
		if err := pki.CheckName("common name", cn); err != nil {
			return fmt.Errorf("--exclude: %w", err)
		}
	}
	if err := checkParallel(opts.parallel); err != nil {
		return err
	}
	return checkWait(opts.wait)
}

// rotationAllows says whether the record st (nil: none) lets this run
// start, continue or abort.
func rotationAllows(st *rotation.State, opts caRotateOptions) error {
	switch {
	case st == nil && (opts.cont || opts.abort):
		return fmt.Errorf("no rotation of CA %q in progress (start one with docker tls ca rotate %s)", opts.name, opts.name)
	case st != nil && !opts.cont && !opts.abort:
		return fmt.Errorf("a rotation of CA %q is in progress (phase %d: %s): docker tls ca rotate %s --continue, or --abort", opts.name, st.Phase, st.Phase, opts.name)
	}
	return nil
}

// loadedCA is the CA a rotation run works with, its key read once (a
// passphrase typed at the prompt opens the new CA's key too).
type loadedCA struct {
	stored *castore.CA
	signer *pki.CA
	pass   []byte
}

func (a *app) loadRotatingCA(name string, pp passphraseOptions) (*loadedCA, error) {
	stored, signer, pass, err := a.loadCAPassphrase(name, pp)
	if err != nil {
		return nil, err
	}
	return &loadedCA{stored: stored, signer: signer, pass: pass}, nil
}

// reloadIfChanged reads the CA again if another command changed it while
// this one waited for the lock (another rotation finished or aborted).
func (a *app) reloadIfChanged(ca *loadedCA) (*loadedCA, error) {
	now, err := a.cas().Get(ca.stored.Name)
	if err != nil {
		return nil, err
	}
	same := func(x, y *x509.Certificate) bool {
		return (x == nil) == (y == nil) && (x == nil || pki.Fingerprint(x) == pki.Fingerprint(y))
	}
	if same(now.Cert, ca.stored.Cert) && same(now.NextCert, ca.stored.NextCert) {
		return ca, nil
	}
	signer, err := a.cas().Signer(now, ca.pass)
	if err != nil {
		return nil, fmt.Errorf("CA %q changed while this command waited for another: %w", now.Name, err)
	}
	return &loadedCA{stored: now, signer: signer, pass: ca.pass}, nil
}

// addExclusions adds to st the names it does not exclude yet, and says
// whether there were any.
func addExclusions(st *rotation.State, names []string) bool {
	added := false
	for _, cn := range names {
		if !slices.Contains(st.Exclude, cn) {
			st.Exclude = append(st.Exclude, cn)
			st.Excluded, added = false, true
		}
	}
	return added
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
	store := a.contexts()
	list, _, err := store.List()
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		// Issued here from the CA, or enrolled through its service (ca
		// serve on this machine): the rotation renews both kinds.
		if !c.Managed() || c.TLS.CAFingerprint != fp || (c.TLS.CA != name && c.TLS.CAURL == "") {
			continue
		}
		if _, certPEM, err := contextPEMs(store, c); err == nil {
			if cert, err := pki.ParseCertificate(certPEM); err == nil {
				st.LocalSerials = append(st.LocalSerials, engine.Serial(cert))
			}
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
// carries out the next phases.
func (a *app) startRotation(st *rotation.State, ca *loadedCA, opts caRotateOptions, save func(*rotation.State) error) (*rotator, error) {
	stored := ca.stored
	if st.Phase >= rotation.Started && stored.NextCert != nil {
		return a.newRotator(ca, opts)
	}
	kt, err := pki.KeyTypeOf(ca.signer.Key.Public())
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
	if stored, err = a.cas().StartRotation(st.CA, next, ca.pass, now); err != nil {
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
	return a.newRotator(&loadedCA{stored: stored, signer: ca.signer, pass: ca.pass}, opts)
}

// checkServiceDB opens the CA service's database, if the CA has one, and
// finds each identity to exclude in its inventory (a certificate or a
// token for it), before anything is written: the rotation counts the
// laptops there, and a misspelt name would let the lost laptop follow.
// With --exclude the database must exist.
func (a *app) checkServiceDB(ctx context.Context, ca *castore.CA, opts caRotateOptions) error {
	db, err := opts.db.openExisting(ctx, a, ca)
	if err != nil {
		return err
	}
	if db == nil && len(opts.exclude) == 0 {
		return nil
	}
	if db == nil {
		return fmt.Errorf("--exclude %q: CA %q has no service database (docker tls ca serve never ran for it, and no --db was given), so no laptop enrolled with it: there is nobody to exclude", opts.exclude[0], ca.Name)
	}
	defer db.Close()
	names, err := db.Names(ctx)
	if err != nil {
		return err
	}
	for _, cn := range opts.exclude {
		if slices.Contains(names, cn) {
			continue
		}
		hint := "docker tls ca issued ls lists who enrolled"
		if near := suggest.Closest(cn, names, 3); len(near) > 0 {
			hint = "did you mean " + quoteList(near) + "?"
		}
		return fmt.Errorf("--exclude %q: CA %q issued no certificate or token to that name: %s", cn, ca.Name, hint)
	}
	return nil
}

// applyExclusions revokes the rotation's excluded identities at the CA's
// service, before any laptop can renew to the new CA.
func (a *app) applyExclusions(ctx context.Context, st *rotation.State, ca *castore.CA, opts caRotateOptions) error {
	db, err := opts.db.openExisting(ctx, a, ca)
	if err != nil {
		return err
	}
	if db == nil {
		return fmt.Errorf("the service database of CA %q, where the excluded identities are revoked, is not here: give the same --db as when the rotation began", ca.Name)
	}
	defer db.Close()
	for _, cn := range st.Exclude {
		rev, err := db.RevokeName(ctx, cn, "excluded from the rotation of CA "+st.CA, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(a.cli.Out(), "Excluded %q: revoked at the CA service (%d certificate(s)); its certificate stops working when the old CA is retired\n", cn, len(rev.Certificates))
	}
	return nil
}

// laptopsOnOldCA are the certificates the CA's service issued to laptops
// that are still on the old CA: valid, client, from the old CA, and not
// this machine's own contexts (the rotation renews those itself). db is
// the service's database, nil when the CA has none.
func laptopsOnOldCA(ctx context.Context, db *remoteca.DB, st *rotation.State, old *x509.Certificate) ([]*remoteca.Issued, error) {
	if db == nil {
		return nil, nil
	}
	all, err := db.StillOnCA(ctx, old, time.Now())
	if err != nil {
		return nil, err
	}
	var left []*remoteca.Issued
	for _, rec := range all {
		if !slices.Contains(st.LocalSerials, rec.Serial) {
			left = append(left, rec)
		}
	}
	return left, nil
}

func describeLaptops(recs []*remoteca.Issued) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		serial := r.Serial
		if len(serial) > 12 {
			serial = serial[:12] + "…"
		}
		out[i] = fmt.Sprintf("%s (serial %s, valid until %s)", r.CN, serial, r.NotAfter.Local().Format("2006-01-02 15:04"))
	}
	return out
}

func countLaptops(n int) string {
	if n == 1 {
		return "1 laptop"
	}
	return fmt.Sprintf("%d laptops", n)
}

// printWaiting says the rotation stopped before a phase and how it goes
// on.
func printWaiting(a *app, st *rotation.State, we *rotation.WaitError) {
	out := a.cli.Out()
	switch we.Next {
	case rotation.Reissued:
		fmt.Fprintf(out, "Phase 2 of 4 complete: every engine and context here trusts the old and the new CA.\n")
		fmt.Fprintf(out, "Waiting for %s to renew to the new CA before the engines get certificates from it (a laptop that has not renewed trusts the old CA alone):\n", countLaptops(len(we.Laptops)))
	default:
		fmt.Fprintf(out, "Phase %d of 4 complete.\n", st.Phase)
		fmt.Fprintf(out, "Waiting for %s to renew to the new CA before the old one is retired:\n", countLaptops(len(we.Laptops)))
	}
	for _, l := range we.Laptops {
		fmt.Fprintf(out, "  %s\n", l)
	}
	fmt.Fprintf(out, "A laptop running docker tls agent notices within its --ca-check interval (default 5 min) and renews by itself; one without the agent renews at its next docker tls renew.\n")
	fmt.Fprintf(out, "Then go on with: docker tls ca rotate %s --continue\n", st.CA)
	fmt.Fprintf(out, "To go on without them instead (they must then enroll again): docker tls ca rotate %s --continue --finish-now\n", st.CA)
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// abortRotation walks every target back and drops the new CA.
func (a *app) abortRotation(ctx context.Context, st *rotation.State, ca *loadedCA, opts caRotateOptions, save func(*rotation.State) error) error {
	newKey := "no new CA had been made"
	var stranded []*remoteca.Issued
	if ca.stored.NextCert != nil {
		ex, err := a.newRotator(ca, opts)
		if err != nil {
			return err
		}
		defer ex.close()
		if err := rotation.Abort(ctx, st, ex, save, opts.parallel); err != nil {
			return fmt.Errorf("%w\nfix the cause, then: docker tls ca rotate %s --abort", err, st.CA)
		}
		newKey = "the new CA's key was deleted"
		// Laptops that already renewed to the new CA through the service
		// hold a certificate of a CA about to be gone: said, not hidden.
		// (This machine's enrolled contexts were renewed back above.)
		if ex.db != nil {
			if stranded, err = ex.db.StillOnCA(ctx, ca.stored.NextCert, time.Now()); err != nil {
				return fmt.Errorf("list the laptops that renewed to the new CA: %w", err)
			}
		}
	}
	if _, err := a.cas().AbortRotation(st.CA); err != nil {
		return err
	}
	if err := a.rotations().Remove(st.CA); err != nil {
		return err
	}
	out := a.cli.Out()
	fmt.Fprintf(out, "Aborted the rotation of CA %q: every engine and context here trusts and uses the old CA again; %s\n", st.CA, newKey)
	if len(stranded) > 0 {
		fmt.Fprintf(out, "%s had already renewed to the new CA through docker tls ca serve and must enroll again (a new docker tls ca token, then docker tls enroll on each):\n", countLaptops(len(stranded)))
		for _, l := range describeLaptops(stranded) {
			fmt.Fprintf(out, "  %s\n", l)
		}
	}
	return nil
}

// rotator carries out the steps on engines and contexts, and holds the
// run before phase 4 while laptops are still on the old CA.
type rotator struct {
	a         *app
	stored    *castore.CA
	old, new  *pki.CA
	wait      time.Duration
	finishNow bool
	named     bool // --finish-now said who is left behind
	// db is the CA's service database, if it has one: the renewals of
	// this machine's enrolled contexts are recorded there.
	db *remoteca.DB
}

// newRotator pairs the loaded old CA with the rotation's new one, whose key
// is in the same kind of store under the same passphrase.
func (a *app) newRotator(ca *loadedCA, opts caRotateOptions) (*rotator, error) {
	next, err := a.cas().NextSigner(ca.stored, ca.pass)
	if err != nil {
		return nil, err
	}
	db, err := opts.db.openExisting(context.Background(), a, ca.stored)
	if err != nil {
		return nil, err
	}
	return &rotator{a: a, stored: ca.stored, old: ca.signer, new: next, wait: opts.wait, finishNow: opts.finishNow, db: db}, nil
}

func (r *rotator) close() {
	if r.db != nil {
		r.db.Close()
	}
}

// BeforePhase holds the rotation before phase 3, and again before phase
// 4, while laptops that enrolled through the CA's service still hold
// valid certificates from the old CA: one that has not renewed trusts the
// old CA alone, and would refuse an engine's certificate from the new one
// (phase 3), and its certificate would stop working at phase 4. With
// --finish-now it names them and goes on.
func (r *rotator) BeforePhase(ctx context.Context, st *rotation.State, next rotation.Phase) error {
	left, err := laptopsOnOldCA(ctx, r.db, st, r.stored.Cert)
	if err != nil {
		return fmt.Errorf("count the laptops still on the old CA: %w", err)
	}
	if len(left) == 0 {
		return nil
	}
	if !r.finishNow {
		return &rotation.WaitError{Next: next, Laptops: describeLaptops(left)}
	}
	if r.named {
		return nil
	}
	r.named = true
	out := r.a.cli.Out()
	fmt.Fprintf(out, "Going on without them (--finish-now): %s will need to enroll again once the old CA is retired (a new docker tls ca token, then docker tls enroll on each):\n", countLaptops(len(left)))
	for _, l := range describeLaptops(left) {
		fmt.Fprintf(out, "  %s\n", l)
	}
	return nil
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
		return r.context(ctx, t.Name, r.bundle(), nil)
	case rotation.Reissued:
		return r.context(ctx, t.Name, r.bundle(), r.new)
	case rotation.Retired:
		return r.context(ctx, t.Name, pki.EncodeCertificate(r.new.Cert), nil)
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
		return r.context(ctx, t.Name, r.bundle(), r.old)
	}
	return r.context(ctx, t.Name, pki.EncodeCertificate(r.old.Cert), nil)
}

// context makes a context trust caPEM and, with issuer, hold a new client
// certificate from it for the same key, subject and lifetime. A context
// enrolled through the CA's service has its new certificate recorded in
// the service's inventory as the renewal of the old one.
func (r *rotator) context(ctx context.Context, name string, caPEM []byte, issuer *pki.CA) error {
	store := r.a.contexts()
	c, err := store.Get(name)
	if err != nil {
		return err
	}
	var old, cert *x509.Certificate
	if issuer != nil {
		_, certPEM, err := contextPEMs(store, c)
		if err != nil {
			return err
		}
		if old, err = pki.ParseCertificate(certPEM); err != nil {
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
	if _, err = store.Retrust(c, caPEM, cert); err != nil {
		return err
	}
	if cert != nil && c.TLS.CAURL != "" && r.db != nil {
		if err := r.db.RecordRenewal(ctx, old, cert, "ca rotate "+r.stored.Name, time.Now()); err != nil {
			return fmt.Errorf("record the renewal of context %s in the CA service's inventory: %w", name, err)
		}
	}
	return nil
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
	target, err := a.contextTarget(a.contexts(), rec.Context)
	if err != nil {
		return fmt.Errorf("context %s, used to check the engine after its restart: %w", rec.Context, err)
	}
	_, err = a.engines().Reissue(ctx, s, rec, engine.Reissue{Trust: caPEM, Issuer: issuer, ReadyTimeout: r.wait, Verify: engineCheck(target)})
	return err
}

func printRotation(ctx context.Context, a *app, st *rotation.State, opts caRotateOptions) error {
	out := a.cli.Out()
	var laptops []*remoteca.Issued
	if !rotation.RetireBegun(st) {
		stored, err := a.cas().Get(st.CA)
		if err != nil {
			return err
		}
		db, err := opts.db.openExisting(ctx, a, stored)
		if err != nil {
			return err
		}
		if db != nil {
			defer db.Close()
		}
		if laptops, err = laptopsOnOldCA(ctx, db, st, stored.Cert); err != nil {
			return err
		}
	}
	if opts.format == "json" {
		return printJSON(out, struct {
			*rotation.State
			Laptops []*remoteca.Issued `json:"laptopsOnOldCA"`
		}{st, laptops})
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
	if len(laptops) > 0 {
		fmt.Fprintf(out, "Laptops enrolled through docker tls ca serve, still on the old CA (phases 3 and 4 wait for them):\n")
		for _, l := range describeLaptops(laptops) {
			fmt.Fprintf(out, "  laptop   %s\n", l)
		}
	}
	if len(st.Exclude) > 0 {
		done := "revoked at the CA service"
		if !st.Excluded {
			done = "to be revoked when the rotation continues"
		}
		fmt.Fprintf(out, "Excluded (%s): %s\n", done, quoteList(st.Exclude))
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
