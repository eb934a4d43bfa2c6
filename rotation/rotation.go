// Package rotation owns the progress of a CA rotation across the engines
// and contexts issued from that CA: which phase each has reached, the
// order the phases run in, and the record that lets a killed or failed run
// be continued or aborted ($DOCKER_CONFIG/tls/rotations/NAME.json).
//
// dockerd and the docker CLI both accept a bundle of CA certificates, so the
// rotation never has a moment when one side trusts only a CA the other side
// no longer uses:
//
//  1. Started: a new CA exists beside the old one (package castore);
//  2. TrustBoth: every context, then every engine, trusts old and new;
//  3. Reissued: every engine, then every context, gets a certificate from
//     the new CA (each side still trusts both, so either order works);
//  4. Retired: every engine, then every context, trusts the new CA alone;
//     then the old CA's key goes.
//
// A phase is complete only when every target has reached it; a target
// that fails (an unreachable engine) stops the run with its name, and the
// next run (--continue) starts from where each target is. Before phases 3
// and 4 an Executor that is also a Gate may hold the run (laptops that
// enrolled through the CA's service and must renew first: WaitError).
// Until phase 4 begins, Abort walks the same steps back to the old CA.
//
// The package also plans a rotation (Plan: which engines and contexts move,
// which are left alone with their owners' commands), makes the new CA
// (Start), and carries out each step (Steps: an engine through
// engine.Records.Reissue, engine renew's path with its restart safety and
// rollback; a context through contexts.Store.Retrust, same key). Run and
// Abort take any Executor, so their ordering is tested apart from the
// steps. Flags, the confirmation and what is printed stay with the
// command.
package rotation

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/internal/records"
)

// Phase is how far a rotation, or one target of it, has come.
type Phase int

// The phases, in order.
const (
	Started Phase = iota + 1
	TrustBoth
	Reissued
	Retired
)

func (p Phase) String() string {
	switch p {
	case Started:
		return "new CA made"
	case TrustBoth:
		return "trusts old and new"
	case Reissued:
		return "certificate from the new CA"
	case Retired:
		return "trusts the new CA only"
	}
	return "not started"
}

// Kind is what a target is.
type Kind string

// The kinds of targets.
const (
	Engine  Kind = "engine"
	Context Kind = "context"
)

// Target is one engine or context the rotation moves.
type Target struct {
	Kind Kind   `json:"kind"`
	Name string `json:"name"`
	// Done is the last phase this target completed.
	Done Phase `json:"done"`
	// Doing is a step begun and not recorded as done: a run killed in
	// the middle of it leaves the target somewhere between Done and
	// Doing, which Run repeats the step for and Abort undoes it from.
	Doing   Phase     `json:"doing,omitempty"`
	Error   string    `json:"error,omitempty"`
	Updated time.Time `json:"updated"`
}

// Outside is a context issued from the CA whose engine docker-tls did not
// set up: the rotation leaves it alone, and Commands say what its owner
// runs.
type Outside struct {
	Context  string   `json:"context"`
	Host     string   `json:"host"`
	Commands []string `json:"commands"`
}

// State is the record of one rotation.
type State struct {
	CA             string    `json:"ca"`
	OldFingerprint string    `json:"oldFingerprint"`
	NewFingerprint string    `json:"newFingerprint"`
	Phase          Phase     `json:"phase"`
	Aborting       bool      `json:"aborting,omitempty"`
	KeepOld        bool      `json:"keepOld,omitempty"`
	Started        time.Time `json:"started"`
	Updated        time.Time `json:"updated"`
	Targets        []*Target `json:"targets"`
	Outside        []Outside `json:"outside,omitempty"`
	// Exclude are identities (CNs) revoked at the CA's service so that
	// they cannot follow to the new CA; Excluded says that is done. They
	// are recorded before they are revoked, so that a run stopped in
	// between revokes them when continued, before any phase runs.
	Exclude  []string `json:"exclude,omitempty"`
	Excluded bool     `json:"excluded,omitempty"`
	// LocalSerials are the serials of this machine's contexts'
	// certificates from the old CA when the rotation was planned: the
	// rotation renews those itself, so they are not laptops to wait for.
	LocalSerials []string `json:"localSerials,omitempty"`
}

// Gate is what an Executor may also be: asked before phase 3 and again
// before phase 4, each time only if no target has begun that phase, it
// returns an error to hold the run there, such as a *WaitError while
// laptops that enrolled through the CA's service have not renewed yet
// (before phase 3: one that has not trusts the old CA alone, and would
// refuse an engine's certificate from the new one).
type Gate interface {
	BeforePhase(ctx context.Context, st *State, next Phase) error
}

// WaitError holds a rotation before a phase: Laptops, identities holding
// valid certificates from the old CA that the rotation cannot renew
// itself, have not renewed to the new CA yet.
type WaitError struct {
	Next    Phase
	Laptops []string
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("waiting for %d laptop(s) to renew to the new CA before phase %d: %s", len(e.Laptops), e.Next, strings.Join(e.Laptops, ", "))
}

// Begun says phase p has begun for some target (or the whole rotation is
// past it).
func Begun(st *State, p Phase) bool {
	if st.Phase >= p {
		return true
	}
	for _, t := range st.Targets {
		if t.Done >= p || t.Doing >= p {
			return true
		}
	}
	return false
}

// RetireBegun says phase 4 has begun for some target: from there on the
// only way is forward.
func RetireBegun(st *State) bool { return Begun(st, Retired) }

// Executor carries out the steps on one target.
type Executor interface {
	// Apply brings t to phase to (TrustBoth, Reissued or Retired); t.Done
	// is to-1. It must be safe to repeat after an interruption.
	Apply(ctx context.Context, t *Target, to Phase) error
	// Revert takes t from phase from (Reissued or TrustBoth) back to
	// from-1.
	Revert(ctx context.Context, t *Target, from Phase) error
}

// PhaseError is a phase that did not complete: the targets that failed.
type PhaseError struct {
	Phase  Phase
	Failed []*Target
}

func (e *PhaseError) Error() string {
	names := make([]string, len(e.Failed))
	for i, t := range e.Failed {
		names[i] = fmt.Sprintf("%s %s (%s)", t.Kind, t.Name, t.Error)
	}
	return fmt.Sprintf("phase %d (%s) stopped: %s", e.Phase, e.Phase, strings.Join(names, "; "))
}

// order is the kinds in the order a phase moves them forward.
func order(p Phase) []Kind {
	if p == TrustBoth {
		return []Kind{Context, Engine}
	}
	return []Kind{Engine, Context}
}

// ErrAborting refuses to go on with a rotation being aborted: the way out
// is back, to the old CA.
var ErrAborting = errors.New("this rotation is being aborted")

// ErrRetireBegun refuses to abort once phase 4 has begun: some targets
// trust only the new CA, and the way out is forward.
var ErrRetireBegun = errors.New("phase 4 (retiring the old CA) has begun: the rotation can only be finished")

// Run moves every target through the phases after st.Phase, saving st
// after each target's step. Engines of one group run up to parallel at a
// time; contexts one after another (they are local and quick).
func Run(ctx context.Context, st *State, ex Executor, save func(*State) error, parallel int) error {
	if st.Aborting {
		return ErrAborting
	}
	for phase := max(st.Phase+1, TrustBoth); phase <= Retired; phase++ {
		if g, ok := ex.(Gate); ok && phase >= Reissued && !Begun(st, phase) {
			if err := g.BeforePhase(ctx, st, phase); err != nil {
				return err
			}
		}
		var failed []*Target
		for _, kind := range order(phase) {
			failed = append(failed, step(st, kind, parallel, save,
				func(t *Target) bool { return t.Done < phase },
				func(t *Target) error { return ex.Apply(ctx, t, phase) }, phase, phase)...)
			if len(failed) > 0 {
				// The next kind waits: in phase 2 an engine must not trust
				// both before every context does, and so on.
				return &PhaseError{Phase: phase, Failed: failed}
			}
		}
		st.Phase = phase
		if err := save(st); err != nil {
			return err
		}
	}
	return nil
}

// Abort walks the targets back to the old CA, phase by phase, saving st
// after each step. It is refused once phase 4 has begun for any target:
// some of them trust only the new CA, and the way out is forward.
func Abort(ctx context.Context, st *State, ex Executor, save func(*State) error, parallel int) error {
	if RetireBegun(st) {
		return ErrRetireBegun
	}
	st.Aborting = true
	if err := save(st); err != nil {
		return err
	}
	for from := Reissued; from >= TrustBoth; from-- {
		kinds := order(from)
		// Backwards: the reverse of the order the phase went forward in.
		kinds[0], kinds[1] = kinds[1], kinds[0]
		for _, kind := range kinds {
			failed := step(st, kind, parallel, save,
				// A step begun towards from (Doing) may have got there.
				func(t *Target) bool { return t.Done >= from || t.Doing == from },
				func(t *Target) error { return ex.Revert(ctx, t, from) }, from-1, from)
			if len(failed) > 0 {
				return &PhaseError{Phase: from, Failed: failed}
			}
		}
		st.Phase = min(st.Phase, from-1)
		if err := save(st); err != nil {
			return err
		}
	}
	return nil
}

// step runs f on the targets of kind, engines concurrently; a target for
// which f ran without error reaches phase reached. Before f changes a
// target, the record says so (Doing: doing), so that a kill in the middle
// of a step is known to the next run.
func step(st *State, kind Kind, parallel int, save func(*State) error, needs func(*Target) bool, do func(*Target) error, reached, doing Phase) []*Target {
	var (
		mu     sync.Mutex
		failed []*Target
		wg     sync.WaitGroup
	)
	n := 1
	if kind == Engine {
		n = max(parallel, 1)
	}
	sem := make(chan struct{}, n)
	for _, t := range st.Targets {
		if t.Kind != kind {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			mu.Lock()
			if !needs(t) {
				mu.Unlock()
				return
			}
			t.Doing = doing
			serr := save(st)
			mu.Unlock()
			if serr != nil {
				mu.Lock()
				t.Error = serr.Error()
				failed = append(failed, t)
				mu.Unlock()
				return
			}
			err := do(t)
			mu.Lock()
			defer mu.Unlock()
			t.Updated = time.Now().UTC()
			if err != nil {
				t.Error = err.Error()
				failed = append(failed, t)
			} else {
				t.Done, t.Doing, t.Error = reached, 0, ""
			}
			st.Updated = t.Updated
			if serr := save(st); serr != nil && err == nil {
				t.Error = serr.Error()
				failed = append(failed, t)
			}
		}()
	}
	wg.Wait()
	sort.Slice(failed, func(i, j int) bool { return failed[i].Name < failed[j].Name })
	return failed
}

// Records keeps the state of rotations, one file per CA, written
// atomically.
type Records struct{ Dir string }

func (r Records) dir() records.Dir[State] { return records.Dir[State]{Path: r.Dir} }

// Get reads a CA's rotation; os.ErrNotExist if there is none.
func (r Records) Get(ca string) (*State, error) { return r.dir().Get(ca) }

// Put writes st.
func (r Records) Put(st *State) error { return r.dir().Put(st.CA, st) }

// Remove deletes the record of a finished or aborted rotation.
func (r Records) Remove(ca string) error { return r.dir().Remove(ca) }

// Lock keeps a second rotation run of the same CA out while this one
// runs (the OS drops it if the process dies).
func (r Records) Lock(ca string) (func(), error) {
	release, err := r.dir().Lock(ca)
	if errors.Is(err, fsutil.ErrLockHeld) {
		return nil, fmt.Errorf("another docker tls ca rotate %s is running", ca)
	}
	return release, err
}
