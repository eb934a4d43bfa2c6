package agent

import (
	"context"
	"math/rand/v2"
	"time"
)

// Due is a certificate the agent keeps fresh: a context enrolled with a CA
// service, renewed over mutual TLS with the certificate it still has.
type Due struct {
	Name string
	// At is when the certificate should be renewed (the service accepts
	// renewals in the last third of a certificate's life).
	At       time.Time
	NotAfter time.Time
	// SignIn says the certificate came from a sign-in: once it has
	// expired, only a new sign-in renews it (the agent renews only valid
	// certificates).
	SignIn bool
}

// renewal is the agent's view of one context's renewals.
type renewal struct {
	due      Due
	running  bool
	failures int
	next     time.Time // no attempt before this (backoff after a failure)
	lastErr  string
	lastOK   time.Time
}

// Backoff after a failed renewal: 5 s, doubling, at most 10 minutes, and
// never so long that the next try falls after the certificate's end.
func backoff(failures int, left time.Duration) time.Duration {
	d := 5 * time.Second << min(failures-1, 10)
	if d > 10*time.Minute {
		d = 10 * time.Minute
	}
	if limit := left / 4; d > limit && limit > time.Second {
		d = limit
	}
	// Jitter, so that laptops that woke together do not retry together.
	return d + time.Duration(rand.Int64N(int64(d/5)+1))
}

// refreshDue rereads which certificates are due when.
func (a *Agent) refreshDue() {
	if a.cfg.Renewals == nil {
		return
	}
	list, err := a.cfg.Renewals()
	if err != nil {
		a.cfg.Log.Printf("renewals: %v", err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[string]bool{}
	for _, d := range list {
		seen[d.Name] = true
		r := a.renewals[d.Name]
		if r == nil {
			r = &renewal{}
			a.renewals[d.Name] = r
		}
		if !d.NotAfter.Equal(r.due.NotAfter) {
			r.failures, r.next = 0, time.Time{} // a new certificate: a fresh start
		}
		r.due = d
	}
	for name, r := range a.renewals {
		if !seen[name] && !r.running {
			delete(a.renewals, name)
		}
	}
}

// renewNow makes the named contexts' renewals due at once (their CA is
// being rotated), whatever their usual time.
func (a *Agent) renewNow(names []string) {
	if len(names) == 0 {
		return
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, name := range names {
		if r := a.renewals[name]; r != nil && r.due.At.After(now) {
			r.due.At = now
			a.cfg.Log.Printf("context %s: its CA is being rotated: renewing now", name)
		}
	}
}

// renewDue starts the renewals that are due, one at a time per context.
func (a *Agent) renewDue(ctx context.Context) {
	if a.cfg.Renew == nil {
		return
	}
	now := a.now()
	a.mu.Lock()
	var start []string
	for name, r := range a.renewals {
		if !r.running && !now.Before(r.due.At) && !now.Before(r.next) && now.Before(r.due.NotAfter) {
			r.running = true
			start = append(start, name)
		}
	}
	a.mu.Unlock()
	for _, name := range start {
		go a.renewOne(ctx, name)
	}
}

func (a *Agent) renewOne(ctx context.Context, name string) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	notAfter, err := a.cfg.Renew(rctx, name)
	cancel()
	now := a.now()
	a.mu.Lock()
	r := a.renewals[name]
	if r == nil {
		r = &renewal{}
		a.renewals[name] = r
	}
	r.running = false
	if err != nil {
		r.failures++
		r.lastErr = err.Error()
		wait := backoff(r.failures, r.due.NotAfter.Sub(now))
		r.next = now.Add(wait)
		attempt := r.failures
		a.mu.Unlock()
		a.cfg.Log.Printf("context %s: renewal failed (attempt %d, next in %s): %v", name, attempt, wait.Round(time.Second), err)
		return
	}
	r.failures, r.lastErr, r.next, r.lastOK = 0, "", time.Time{}, now
	a.mu.Unlock()
	a.cfg.Log.Printf("context %s: certificate renewed, valid until %s", name, notAfter.Format(time.RFC3339))
	// Serve the new certificate now, not at the next rescan.
	if err := a.reload(ctx); err != nil {
		a.cfg.Log.Printf("reload after renewing %s: %v", name, err)
	}
	a.refreshDue()
}

// RenewalStatus is one context's automatic renewal, for agent status.
type RenewalStatus struct {
	Name      string    `json:"name"`
	Due       time.Time `json:"due"`
	NotAfter  time.Time `json:"notAfter"`
	Failures  int       `json:"failures,omitempty"`
	LastError string    `json:"lastError,omitempty"`
	NextTry   time.Time `json:"nextTry,omitzero"`
	Renewed   time.Time `json:"renewed,omitzero"`
	SignIn    bool      `json:"signIn,omitempty"`
}
