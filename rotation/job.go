package rotation

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/internal/suggest"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
)

// Job is one run of a rotation on this machine, once the command's flags
// are checked, the CA's key is open and the record's lock is held: it
// records the rotation, carries it on from where its record says, or walks
// it back. What it does is told to Report; what stops it is returned
// (*WaitError, *PhaseError), for the command to explain.
type Job struct {
	CAs      *castore.Store
	Records  Records
	Engines  engine.Records
	Contexts *contexts.Store

	// CA is the CA being rotated as stored, Signer its key, and
	// Passphrase what opened it, which opens the new CA's key too.
	CA         *castore.CA
	Signer     *pki.CA
	Passphrase []byte

	// OpenDB opens the CA service's database if there is one (nil, nil
	// when not).
	OpenDB func(context.Context, *castore.CA) (*remoteca.DB, error)
	// Dial, Check, ReadyTimeout and RecordIssued are the Steps' (see there).
	Dial         func(context.Context, *engine.Record) (Session, error)
	Check        func(contextName string) (func(context.Context) error, error)
	ReadyTimeout time.Duration
	RecordIssued func(ctx context.Context, signer *pki.CA, source string) pki.Issuer

	Exclude   []string
	KeepOld   bool
	FinishNow bool
	Parallel  int
	Report    Reporter
}

// Reporter is told what a run did, as it does it.
type Reporter interface {
	// Excluded: an excluded identity's certificates were revoked at the
	// CA service.
	Excluded(cn string, certificates int)
	// Rotating: the phases begin, with how many laptops enrolled through
	// the CA service will follow.
	Rotating(st *State, following int)
	// LeftBehind: with FinishNow, the laptops that did not follow.
	LeftBehind([]*remoteca.Issued)
}

// Reload reads the CA again if another command changed it while this one
// waited for the lock (another rotation finished or aborted).
func (j *Job) Reload() error {
	now, err := j.CAs.Get(j.CA.Name)
	if err != nil {
		return err
	}
	same := func(x, y *x509.Certificate) bool {
		return (x == nil) == (y == nil) && (x == nil || pki.Fingerprint(x) == pki.Fingerprint(y))
	}
	if same(now.Cert, j.CA.Cert) && same(now.NextCert, j.CA.NextCert) {
		return nil
	}
	signer, err := j.CAs.Signer(now, j.Passphrase)
	if err != nil {
		return fmt.Errorf("CA %q changed while this command waited for another: %w", now.Name, err)
	}
	j.CA, j.Signer = now, signer
	return nil
}

// Record plans a new rotation and records it before anything else is
// written (a crash from then on is found by a run that continues or
// aborts, whatever state the CA is in), or adds this run's exclusions to
// st, the record of one in progress.
func (j *Job) Record(st *State) (*State, error) {
	switch {
	case st == nil:
		engines, _, err := j.Engines.List()
		if err != nil {
			return nil, err
		}
		if st, err = Plan(j.CA, engines, j.Contexts, j.KeepOld); err != nil {
			return nil, err
		}
		st.Exclude = j.Exclude
		if err := j.Records.Put(st); err != nil {
			return nil, err
		}
	case st.AddExclusions(j.Exclude):
		if err := j.Records.Put(st); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// AddExclusions adds to st the names it does not exclude yet, and says
// whether there were any (they are then still to be revoked).
func (st *State) AddExclusions(names []string) bool {
	added := false
	for _, cn := range names {
		if !slices.Contains(st.Exclude, cn) {
			st.Exclude = append(st.Exclude, cn)
			st.Excluded, added = false, true
		}
	}
	return added
}

// Continue revokes the excluded identities, makes the new CA once, runs
// the phases from where each target is, and retires the old CA. It
// returns the CA as it is after.
func (j *Job) Continue(ctx context.Context, st *State) (*castore.CA, error) {
	save := j.Records.Put
	// Excluded identities are revoked before any phase runs, so that none
	// of them can renew to the new CA; recorded first, so that a run
	// stopped in between revokes them when continued.
	if len(st.Exclude) > 0 && !st.Excluded {
		if err := j.revokeExcluded(ctx, st); err != nil {
			return nil, err
		}
		st.Excluded = true
		if err := save(st); err != nil {
			return nil, err
		}
	}
	if j.KeepOld {
		st.KeepOld = true
	}
	stored, err := Start(j.CAs, st, j.CA, j.Signer, j.Passphrase, save)
	if err != nil {
		return nil, err
	}
	ex, err := j.steps(ctx, stored)
	if err != nil {
		return nil, err
	}
	defer ex.close()
	if !RetireBegun(st) {
		left, err := LaptopsOnOldCA(ctx, ex.DB, st, j.CA.Cert)
		if err != nil {
			return nil, err
		}
		j.Report.Rotating(st, len(left))
	} else {
		j.Report.Rotating(st, 0)
	}
	if err := Run(ctx, st, ex, save, j.Parallel); err != nil {
		return nil, err
	}
	done, err := j.CAs.FinishRotation(st.CA, st.KeepOld)
	if err != nil {
		return nil, &RetireError{Err: err}
	}
	if err := j.Records.Remove(st.CA); err != nil {
		return nil, err
	}
	return done, nil
}

// revokeExcluded revokes the rotation's excluded identities at the CA's
// service, before any laptop can renew to the new CA.
func (j *Job) revokeExcluded(ctx context.Context, st *State) error {
	db, err := j.OpenDB(ctx, j.CA)
	if err != nil {
		return err
	}
	if db == nil {
		return &NoDBError{CA: j.CA.Name}
	}
	defer db.Close()
	for _, cn := range st.Exclude {
		rev, err := db.RevokeName(ctx, cn, "excluded from the rotation of CA "+st.CA, time.Now())
		if err != nil {
			return err
		}
		j.Report.Excluded(cn, len(rev.Certificates))
	}
	return nil
}

// Aborted is what walking a rotation back left.
type Aborted struct {
	// NewCAMade: a new CA had been made, and its key is now deleted.
	NewCAMade bool
	// Stranded are laptops that renewed to the new CA through the CA
	// service: their certificates are of a CA that is gone.
	Stranded []*remoteca.Issued
}

// Abort walks every target back and drops the new CA.
func (j *Job) Abort(ctx context.Context, st *State) (*Aborted, error) {
	var res Aborted
	if j.CA.NextCert != nil {
		ex, err := j.steps(ctx, j.CA)
		if err != nil {
			return nil, err
		}
		defer ex.close()
		if err := Abort(ctx, st, ex, j.Records.Put, j.Parallel); err != nil {
			return nil, err
		}
		res.NewCAMade = true
		// This machine's enrolled contexts were renewed back above; other
		// laptops that renewed through the service are said, not hidden.
		if ex.DB != nil {
			if res.Stranded, err = ex.DB.StillOnCA(ctx, j.CA.NextCert, time.Now()); err != nil {
				return nil, fmt.Errorf("list the laptops that renewed to the new CA: %w", err)
			}
		}
	}
	if _, err := j.CAs.AbortRotation(st.CA); err != nil {
		return nil, err
	}
	if err := j.Records.Remove(st.CA); err != nil {
		return nil, err
	}
	return &res, nil
}

// steps pairs the old CA's signer with the new one stored in ca, whose key
// is in the same kind of store under the same passphrase, and opens the
// CA service's database, if the CA has one.
func (j *Job) steps(ctx context.Context, ca *castore.CA) (*Steps, error) {
	next, err := j.CAs.NextSigner(ca, j.Passphrase)
	if err != nil {
		return nil, err
	}
	db, err := j.OpenDB(ctx, ca)
	if err != nil {
		return nil, err
	}
	return &Steps{
		CA: ca, Old: j.Signer, New: next, Contexts: j.Contexts, Engines: j.Engines,
		Dial: j.Dial, Check: j.Check, ReadyTimeout: j.ReadyTimeout, Record: j.RecordIssued,
		DB: db, FinishNow: j.FinishNow, LeftBehind: j.Report.LeftBehind,
	}, nil
}

func (s *Steps) close() {
	if s.DB != nil {
		s.DB.Close()
	}
}

// UnknownIdentityError is an identity to exclude to which the CA's service
// issued no certificate or token; Near are the names it did issue to that
// are spelt closest.
type UnknownIdentityError struct {
	Name string
	Near []string
}

func (e *UnknownIdentityError) Error() string {
	return fmt.Sprintf("the CA's service issued no certificate or token to %q", e.Name)
}

// CheckExclusions finds each identity to exclude in the inventory of the
// CA's service, before anything is written: the rotation counts the
// laptops there, and a misspelt name would let the lost laptop follow.
func CheckExclusions(ctx context.Context, db *remoteca.DB, names []string) error {
	known, err := db.Names(ctx)
	if err != nil {
		return err
	}
	for _, cn := range names {
		if !slices.Contains(known, cn) {
			return &UnknownIdentityError{Name: cn, Near: suggest.Closest(cn, known, 3)}
		}
	}
	return nil
}

// RetireError is a rotation whose last step, retiring the old CA, failed
// after every engine and context moved to the new one: running the
// rotation again finishes it.
type RetireError struct{ Err error }

func (e *RetireError) Error() string {
	return "every engine and context uses the new CA, but retiring the old one failed: " + e.Err.Error()
}

func (e *RetireError) Unwrap() error { return e.Err }

// NoDBError is a rotation with excluded identities whose CA service
// database, where they are revoked, this run was not given.
type NoDBError struct{ CA string }

func (e *NoDBError) Error() string {
	return fmt.Sprintf("the service database of CA %q, where the excluded identities are revoked, is not here", e.CA)
}
