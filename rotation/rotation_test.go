package rotation

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fake records the steps and fails the targets named in fail.
type fake struct {
	mu   sync.Mutex
	log  []string
	fail map[string]bool
}

func (f *fake) do(verb string, t *Target, p Phase) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf("%s %s:%s %d", verb, t.Kind, t.Name, p))
	if f.fail[t.Name] {
		return errors.New("unreachable")
	}
	return nil
}

func (f *fake) Apply(_ context.Context, t *Target, to Phase) error { return f.do("apply", t, to) }
func (f *fake) Revert(_ context.Context, t *Target, from Phase) error {
	return f.do("revert", t, from)
}

// phases lists, per phase, the kinds in the order the log shows them.
func (f *fake) kinds() string {
	var b strings.Builder
	last := ""
	for _, l := range f.log {
		parts := strings.Fields(l)
		k := parts[0] + " " + strings.Split(parts[1], ":")[0] + " " + parts[2]
		if k != last {
			b.WriteString(k + "; ")
			last = k
		}
	}
	return b.String()
}

func newState() *State {
	return &State{CA: "team", Phase: Started, Targets: []*Target{
		{Kind: Engine, Name: "e1", Done: Started}, {Kind: Engine, Name: "e2", Done: Started},
		{Kind: Context, Name: "c1", Done: Started}, {Kind: Context, Name: "c2", Done: Started},
	}}
}

func TestRunOrderFailureAndContinue(t *testing.T) {
	rec := Records{Dir: t.TempDir()}
	st := newState()
	f := &fake{fail: map[string]bool{}}
	save := func(s *State) error { return rec.Put(s) }
	// e2 becomes unreachable after phase 2.
	f.fail["e2"] = false
	ex := &failAt{fake: f, name: "e2", phase: Reissued}
	err := Run(context.Background(), st, ex, save, 4)
	var pe *PhaseError
	if !errors.As(err, &pe) || pe.Phase != Reissued || len(pe.Failed) != 1 || pe.Failed[0].Name != "e2" {
		t.Fatalf("err = %v", err)
	}
	if got := f.kinds(); got != "apply context 2; apply engine 2; apply engine 3; " {
		t.Fatalf("order: %s", got)
	}
	// The record says where each target is.
	saved, err := rec.Get("team")
	if err != nil || saved.Phase != TrustBoth {
		t.Fatalf("saved phase %v, %v", saved.Phase, err)
	}
	for _, tg := range saved.Targets {
		want := TrustBoth
		if tg.Name == "e1" {
			want = Reissued
		}
		if tg.Done != want || (tg.Name == "e2") != (tg.Error != "") {
			t.Errorf("%s: done %d error %q", tg.Name, tg.Done, tg.Error)
		}
	}
	// Continue: only what is left runs, and the rotation completes.
	ex.phase = 0
	f.log = nil
	if err := Run(context.Background(), saved, ex, save, 4); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.log, ", "); strings.Contains(got, "engine:e1 3") || !strings.Contains(got, "engine:e2 3") {
		t.Fatalf("continue ran: %s", got)
	}
	if got := f.kinds(); got != "apply engine 3; apply context 3; apply engine 4; apply context 4; " {
		t.Fatalf("order on continue: %s", got)
	}
	if saved.Phase != Retired {
		t.Fatalf("phase %d", saved.Phase)
	}
	if err := Abort(context.Background(), saved, ex, save, 4); err == nil || !strings.Contains(err.Error(), "can only be finished") {
		t.Fatalf("abort after phase 4: %v", err)
	}
}

// failAt fails one target at one phase.
type failAt struct {
	*fake
	name  string
	phase Phase
}

func (f *failAt) Apply(ctx context.Context, t *Target, to Phase) error {
	if t.Name == f.name && to == f.phase {
		f.fake.mu.Lock()
		f.fake.log = append(f.fake.log, fmt.Sprintf("apply %s:%s %d", t.Kind, t.Name, to))
		f.fake.mu.Unlock()
		return errors.New("unreachable")
	}
	return f.fake.Apply(ctx, t, to)
}

func TestAbortWalksBack(t *testing.T) {
	st := newState()
	f := &fake{}
	save := func(*State) error { return nil }
	ex := &failAt{fake: f, name: "c2", phase: Reissued}
	if err := Run(context.Background(), st, ex, save, 2); err == nil {
		t.Fatal("expected a stop in phase 3")
	}
	f.log = nil
	if err := Abort(context.Background(), st, f, save, 2); err != nil {
		t.Fatal(err)
	}
	// Phase 3 undone contexts first (c2 too: its step began, and a
	// failure may come after the change), then engines; phase 2 undone
	// engines first, then contexts.
	if got := f.kinds(); got != "revert context 3; revert engine 3; revert engine 2; revert context 2; " {
		t.Fatalf("abort order: %s", got)
	}
	if !strings.Contains(strings.Join(f.log, ","), "context:c2 3") {
		t.Fatal("c2's begun phase-3 step was not undone")
	}
	for _, tg := range st.Targets {
		if tg.Done != Started {
			t.Errorf("%s at %d after abort", tg.Name, tg.Done)
		}
	}
	if err := Run(context.Background(), st, f, save, 2); err == nil || !strings.Contains(err.Error(), "being aborted") {
		t.Fatalf("run after abort: %v", err)
	}
}

func TestRecordsLock(t *testing.T) {
	rec := Records{Dir: filepath.Join(t.TempDir(), "rotations")}
	release, err := rec.Lock("team")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Lock("team"); err == nil || !strings.Contains(err.Error(), "another docker tls ca rotate team") {
		t.Fatalf("second lock: %v", err)
	}
	release()
	if _, err := rec.Get("team"); err == nil {
		t.Fatal("a record without a rotation")
	}
}

// TestAbortUndoesAnInterruptedStep: a run killed in the middle of an
// engine's phase-3 step (recorded as Doing) may have left it with the new
// CA's certificate: abort undoes that step too.
func TestAbortUndoesAnInterruptedStep(t *testing.T) {
	st := newState()
	st.Phase = TrustBoth
	for _, tg := range st.Targets {
		tg.Done = TrustBoth
	}
	st.Targets[1].Doing = Reissued // e2, killed mid-step
	f := &fake{}
	var saved []string
	save := func(s *State) error {
		saved = append(saved, fmt.Sprintf("%s:%d/%d", s.Targets[0].Name, s.Targets[0].Done, s.Targets[0].Doing))
		return nil
	}
	if err := Abort(context.Background(), st, f, save, 2); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.log, ", "); !strings.Contains(got, "revert engine:e2 3") || strings.Contains(got, "revert engine:e1 3") {
		t.Fatalf("abort steps: %s", got)
	}
	// Each step is recorded as begun before it runs.
	if !slices.Contains(saved, "e1:2/2") {
		t.Fatalf("e1's revert of phase 2 was not recorded as begun: %v", saved)
	}
}

// gated is a fake whose Gate holds the run before phase 3 or 4 while
// waiting is set, and records when it was asked.
type gated struct {
	*fake
	waiting []string
	asked   []Phase
}

func (g *gated) BeforePhase(_ context.Context, st *State, next Phase) error {
	g.asked = append(g.asked, next)
	if st.Phase != next-1 {
		return fmt.Errorf("asked before phase %d at phase %d", next, st.Phase)
	}
	if len(g.waiting) > 0 {
		return &WaitError{Next: next, Laptops: g.waiting}
	}
	return nil
}

// TestGateHoldsBeforeReissueAndRetire: a Gate that waits stops the run
// after phase 2 with nothing of phase 3 begun (a laptop that has not
// renewed trusts the old CA alone); once it lets go, the run asks again
// before phase 4 and retires; a phase already begun is never held.
func TestGateHoldsBeforeReissueAndRetire(t *testing.T) {
	rec := Records{Dir: t.TempDir()}
	st := newState()
	save := func(s *State) error { return rec.Put(s) }
	g := &gated{fake: &fake{fail: map[string]bool{}}, waiting: []string{"alice@lap1"}}
	err := Run(context.Background(), st, g, save, 4)
	var we *WaitError
	if !errors.As(err, &we) || we.Next != Reissued || len(we.Laptops) != 1 || !strings.Contains(err.Error(), "waiting for 1 laptop(s) to renew to the new CA before phase 3") {
		t.Fatalf("err = %v, want a WaitError before phase 3", err)
	}
	if st.Phase != TrustBoth || Begun(st, Reissued) {
		t.Fatalf("phase %d, phase 3 begun %v: want phase 2 complete and nothing of phase 3", st.Phase, Begun(st, Reissued))
	}
	for _, l := range g.log {
		if !strings.HasSuffix(l, " 2") {
			t.Fatalf("a step after phase 2 ran while waiting: %s", l)
		}
	}
	// Still waiting on the next run: nothing runs.
	n := len(g.log)
	if err := Run(context.Background(), st, g, save, 4); !errors.As(err, &we) || len(g.log) != n {
		t.Fatalf("second run: %v, %d new steps", err, len(g.log)-n)
	}
	g.waiting = nil
	if err := Run(context.Background(), st, g, save, 4); err != nil {
		t.Fatal(err)
	}
	if want := []Phase{Reissued, Reissued, Reissued, Retired}; st.Phase != Retired || !slices.Equal(g.asked, want) {
		t.Fatalf("phase %d, gate asked before %v; want 4 and %v", st.Phase, g.asked, want)
	}

	// A run that stopped inside phase 3 (one target begun) is not held
	// there: some engines already serve the new CA's certificates.
	for _, begun := range []Phase{Reissued, Retired} {
		st2 := newState()
		for _, tg := range st2.Targets {
			tg.Done = begun - 1
		}
		st2.Phase = begun - 1
		st2.Targets[0].Doing = begun
		g2 := &gated{fake: &fake{fail: map[string]bool{}}, waiting: []string{"bob"}}
		err := Run(context.Background(), st2, g2, save, 4)
		if begun == Retired && (err != nil || len(g2.asked) != 0) {
			t.Fatalf("a begun phase 4 was held: %v (asked %v)", err, g2.asked)
		}
		if begun == Reissued && (!errors.As(err, &we) || we.Next != Retired || st2.Phase != Reissued) {
			t.Fatalf("a begun phase 3 should run to its end and be held before phase 4: %v, phase %d", err, st2.Phase)
		}
	}
}
