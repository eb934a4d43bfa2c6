package castore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

// TestFollowSeesARotationBeginAndEnd: a follower gets the new CA when a
// rotation starts, the old one alone when it is aborted, and a failed
// apply is retried at the next tick.
func TestFollowSeesARotationBeginAndEnd(t *testing.T) {
	s, _ := newStore(t)
	first := newCA(t)
	was, err := s.Create("team", first, CreateOptions{KeyStore: keystore.KindFile})
	if err != nil {
		t.Fatal(err)
	}
	type seen struct{ ca, next string }
	got := make(chan seen, 16)
	var mu sync.Mutex
	failNext := true
	var failures []error
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Follow(ctx, was, nil, 5*time.Millisecond, func(ca, next *pki.CA) error {
			mu.Lock()
			defer mu.Unlock()
			if failNext {
				failNext = false
				return errors.New("not now")
			}
			v := seen{ca: pki.Fingerprint(ca.Cert)}
			if next != nil {
				v.next = pki.Fingerprint(next.Cert)
			}
			got <- v
			return nil
		}, func(err error) {
			mu.Lock()
			failures = append(failures, err)
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()
	wait := func(want seen) {
		t.Helper()
		select {
		case v := <-got:
			if v != want {
				t.Fatalf("followed %+v, want %+v", v, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Follow did not see %+v within 5 s", want)
		}
	}
	second := newCA(t)
	if _, err := s.StartRotation("team", second, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	wait(seen{ca: pki.Fingerprint(first.Cert), next: pki.Fingerprint(second.Cert)})
	if _, err := s.AbortRotation("team"); err != nil {
		t.Fatal(err)
	}
	wait(seen{ca: pki.Fingerprint(first.Cert)})
	mu.Lock()
	defer mu.Unlock()
	if len(failures) != 1 {
		t.Errorf("failures told: %v, want the one refused apply", failures)
	}
}
