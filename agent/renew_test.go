package agent

import (
	"context"
	"errors"
	"io"
	"log"
	"sync"
	"testing"
	"time"
)

// TestRenewalSchedule: a certificate is renewed once it is due, not
// before; a failure is retried after a backoff, shown by status, and
// forgotten after the next success.
func TestRenewalSchedule(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	var (
		mu    sync.Mutex
		clock = t0
		calls []string
		fail  = true
		due   = Due{Name: "short", At: t0.Add(10 * time.Second), NotAfter: t0.Add(15 * time.Second)}
	)
	done := make(chan struct{}, 10)
	a := &Agent{cfg: Config{
		Dir:       t.TempDir(),
		Endpoints: func() ([]Endpoint, error) { return nil, nil },
		Log:       log.New(io.Discard, "", 0),
		Renewals:  func() ([]Due, error) { mu.Lock(); defer mu.Unlock(); return []Due{due}, nil },
		Renew: func(ctx context.Context, name string) (time.Time, error) {
			mu.Lock()
			defer mu.Unlock()
			defer func() { done <- struct{}{} }()
			calls = append(calls, name)
			if fail {
				return time.Time{}, errors.New("the CA refused: revoked")
			}
			due = Due{Name: name, At: clock.Add(10 * time.Second), NotAfter: clock.Add(15 * time.Second)}
			return due.NotAfter, nil
		},
	}, eps: map[string]*served{}, keys: map[string]*heldKey{}, renewals: map[string]*renewal{},
		now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }}
	ctx := context.Background()
	at := func(d time.Duration) { mu.Lock(); clock = t0.Add(d); mu.Unlock(); a.renewDue(ctx) }
	wait := func() {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the renewal did not run")
		}
		time.Sleep(20 * time.Millisecond) // renewOne records the result after Renew returns
	}
	a.refreshDue()
	at(9 * time.Second)
	if len(calls) != 0 {
		t.Fatalf("renewed before it was due: %v", calls)
	}
	at(10 * time.Second)
	wait()
	st := a.status()
	if len(st.Renewals) != 1 || st.Renewals[0].Failures != 1 || st.Renewals[0].LastError != "the CA refused: revoked" {
		t.Fatalf("status after a failure: %+v", st.Renewals)
	}
	next := st.Renewals[0].NextTry
	if d := next.Sub(t0.Add(10 * time.Second)); d < time.Second || d > 2*time.Second {
		t.Fatalf("retry in %s; with 5 s left, backoff is capped at a quarter of it", d)
	}
	at(10*time.Second + 500*time.Millisecond)
	mu.Lock()
	n := len(calls)
	fail = false
	mu.Unlock()
	if n != 1 {
		t.Fatalf("retried during the backoff: %d calls", n)
	}
	at(next.Sub(t0))
	wait()
	if st := a.status(); st.Renewals[0].Failures != 0 || st.Renewals[0].LastError != "" || !st.Renewals[0].NotAfter.After(t0.Add(15*time.Second)) {
		t.Fatalf("status after the renewal: %+v", st.Renewals)
	}
	// Expired: nothing more to try.
	at(time.Hour)
	time.Sleep(20 * time.Millisecond)
	if len(calls) != 2 {
		t.Fatalf("%d renewals, want 2", len(calls))
	}
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		failures int
		left     time.Duration
		min, max time.Duration
	}{
		{1, time.Hour, 5 * time.Second, 6 * time.Second},
		{3, time.Hour, 20 * time.Second, 24 * time.Second},
		{20, 24 * time.Hour, 10 * time.Minute, 12 * time.Minute},
		{20, time.Minute, 15 * time.Second, 18 * time.Second},
	} {
		if d := backoff(tt.failures, tt.left); d < tt.min || d > tt.max {
			t.Errorf("backoff(%d, %s) = %s, want %s..%s", tt.failures, tt.left, d, tt.min, tt.max)
		}
	}
}

// TestRenewNowDuringARotation: a context its CA service says is being
// rotated is renewed at once, not when its certificate is due.
func TestRenewNowDuringARotation(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	renewed := make(chan string, 2)
	a := &Agent{cfg: Config{
		Dir:       t.TempDir(),
		Endpoints: func() ([]Endpoint, error) { return nil, nil },
		Log:       log.New(io.Discard, "", 0),
		Renewals: func() ([]Due, error) {
			return []Due{{Name: "laptop", At: t0.Add(60 * 24 * time.Hour), NotAfter: t0.Add(90 * 24 * time.Hour)}}, nil
		},
		Renew: func(ctx context.Context, name string) (time.Time, error) {
			renewed <- name
			return t0.Add(90 * 24 * time.Hour), nil
		},
	}, eps: map[string]*served{}, keys: map[string]*heldKey{}, renewals: map[string]*renewal{}, now: func() time.Time { return t0 }}
	a.refreshDue()
	a.renewDue(context.Background())
	select {
	case n := <-renewed:
		t.Fatalf("%s renewed 60 days early", n)
	case <-time.After(50 * time.Millisecond):
	}
	a.renewNow([]string{"laptop", "unknown"})
	a.renewDue(context.Background())
	select {
	case n := <-renewed:
		if n != "laptop" {
			t.Fatalf("renewed %s", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not renewed after the rotation check")
	}
}
