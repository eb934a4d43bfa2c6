package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/internal/output"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/probe"
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
	if err := checkRotateFlags(opts); err != nil {
		return err
	}
	recs := a.rotations()
	st, err := recs.Get(opts.name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if opts.status {
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
	job, err := a.rotationJob(opts)
	if err != nil {
		return err
	}
	if err := a.checkServiceDB(ctx, job.CA, opts); err != nil {
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
	if err := job.Reload(); err != nil {
		return err
	}
	if st, err = job.Record(st); err != nil {
		return err
	}
	if opts.abort {
		return a.abortRotation(ctx, job, st)
	}
	return a.carryOutRotation(ctx, job, st)
}

// carryOutRotation runs the rotation on and says where it stopped.
func (a *app) carryOutRotation(ctx context.Context, job *rotation.Job, st *rotation.State) error {
	done, err := job.Continue(ctx, st)
	if err != nil {
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
	printRotated(a, st, done)
	return nil
}

// rotationReport prints what a rotation run does as it does it.
type rotationReport struct{ out io.Writer }

func (r rotationReport) Excluded(cn string, n int) {
	fmt.Fprintf(r.out, "Excluded %q: revoked at the CA service (%d certificate(s)); its certificate stops working when the old CA is retired\n", cn, n)
}

func (r rotationReport) Rotating(st *rotation.State, following int) {
	fmt.Fprintf(r.out, "Rotating CA %q: %s -> %s\n", st.CA, short(st.OldFingerprint), short(st.NewFingerprint))
	if following > 0 {
		fmt.Fprintf(r.out, "%s enrolled through docker tls ca serve will follow: each renews to the new CA through the service\n", countLaptops(following))
	}
}

func (r rotationReport) LeftBehind(left []*remoteca.Issued) {
	fmt.Fprintf(r.out, "Going on without them (--finish-now): %s will need to enroll again once the old CA is retired (a new docker tls ca token, then docker tls enroll on each):\n", countLaptops(len(left)))
	for _, l := range rotation.DescribeLaptops(left) {
		fmt.Fprintf(r.out, "  %s\n", l)
	}
}

// printRotated says what a finished rotation moved.
func printRotated(a *app, st *rotation.State, done *castore.CA) {
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
	fmt.Fprintf(a.cli.Out(), "Rotated CA %q: %d engine(s) and %d context(s) use %s; the old CA's key was %s\n", st.CA, engines, ctxs, short(pki.Fingerprint(done.Cert)), kept)
	printOutside(a, st)
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
	if err := checkExcluded(opts.exclude); err != nil {
		return err
	}
	if err := checkParallel(opts.parallel); err != nil {
		return err
	}
	return checkWait(opts.wait)
}

// checkExcluded refuses an --exclude no certificate could carry.
func checkExcluded(cns []string) error {
	for _, cn := range cns {
		if strings.TrimSpace(cn) == "" {
			return errors.New("--exclude needs a CN: docker tls ca issued ls lists who enrolled")
		}
		if err := pki.CheckName("common name", cn); err != nil {
			return fmt.Errorf("--exclude: %w", err)
		}
	}
	return nil
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

// rotationJob opens the CA's key (a wrong passphrase is refused before
// anything is written) and wires a rotation run to this machine's stores,
// its engines' hosts and the output.
func (a *app) rotationJob(opts caRotateOptions) (*rotation.Job, error) {
	stored, signer, pass, err := a.loadCAPassphrase(opts.name, opts.passphrase)
	if err != nil {
		return nil, err
	}
	return &rotation.Job{
		CAs: a.cas(), Records: a.rotations(), Engines: a.engines(), Contexts: a.contexts(),
		CA: stored, Signer: signer, Passphrase: pass,
		OpenDB: func(ctx context.Context, ca *castore.CA) (*remoteca.DB, error) {
			return opts.db.openExisting(ctx, a, ca)
		},
		Dial: func(ctx context.Context, rec *engine.Record) (rotation.Session, error) { return a.dialEngine(ctx, rec) },
		Check: func(name string) (func(context.Context) error, error) {
			target, err := a.contextTarget(name)
			if err != nil {
				return nil, err
			}
			return probe.ServesAPI(target), nil
		},
		ReadyTimeout: opts.wait,
		RecordIssued: func(ctx context.Context, signer *pki.CA, source string) pki.Issuer {
			return a.recorded(ctx, stored, signer, source)
		},
		Exclude: opts.exclude, KeepOld: opts.keepOld, FinishNow: opts.finishNow, Parallel: opts.parallel,
		Report: rotationReport{out: a.cli.Out()},
	}, nil
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

// checkServiceDB opens the CA service's database, if the CA has one, and
// finds each identity to exclude there (rotation.CheckExclusions). With
// --exclude the database must exist.
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
	err = rotation.CheckExclusions(ctx, db, opts.exclude)
	var unknown *rotation.UnknownIdentityError
	if errors.As(err, &unknown) {
		hint := "docker tls ca issued ls lists who enrolled"
		if len(unknown.Near) > 0 {
			hint = "did you mean " + quoteList(unknown.Near) + "?"
		}
		return fmt.Errorf("--exclude %q: CA %q issued no certificate or token to that name: %s", unknown.Name, ca.Name, hint)
	}
	return err
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
func (a *app) abortRotation(ctx context.Context, job *rotation.Job, st *rotation.State) error {
	res, err := job.Abort(ctx, st)
	if err != nil {
		var pe *rotation.PhaseError
		if errors.As(err, &pe) {
			return fmt.Errorf("%w\nfix the cause, then: docker tls ca rotate %s --abort", err, st.CA)
		}
		return err
	}
	newKey := "no new CA had been made"
	if res.NewCAMade {
		newKey = "the new CA's key was deleted"
	}
	out := a.cli.Out()
	fmt.Fprintf(out, "Aborted the rotation of CA %q: every engine and context here trusts and uses the old CA again; %s\n", st.CA, newKey)
	if len(res.Stranded) > 0 {
		fmt.Fprintf(out, "%s had already renewed to the new CA through docker tls ca serve and must enroll again (a new docker tls ca token, then docker tls enroll on each):\n", countLaptops(len(res.Stranded)))
		for _, l := range rotation.DescribeLaptops(res.Stranded) {
			fmt.Fprintf(out, "  %s\n", l)
		}
	}
	return nil
}

func printRotation(ctx context.Context, a *app, st *rotation.State, opts caRotateOptions) error {
	out := a.cli.Out()
	if st == nil {
		fmt.Fprintf(out, "No rotation of CA %q in progress\n", opts.name)
		return nil
	}
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
		if laptops, err = rotation.LaptopsOnOldCA(ctx, db, st, stored.Cert); err != nil {
			return err
		}
	}
	if opts.format == "json" {
		return output.JSON(out, struct {
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
		for _, l := range rotation.DescribeLaptops(laptops) {
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
