package engine

import (
	"context"
	"errors"
	"maps"
	"testing"
)

// TestTeardownRestoresThenForgets: the host's files are those from before
// the setup, then the context goes, and the record last; a context that
// cannot be removed keeps the record for a second run.
func TestTeardownRestoresThenForgets(t *testing.T) {
	for _, contextFails := range []bool{false, true} {
		recs := Records{Dir: t.TempDir()}
		h := newFakeHost(t, 0)
		before := maps.Clone(h.files)
		ca := newTestCA(t)
		rec, err := setUp(t, recs, h, ca, func() error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		if len(h.files) == len(before) {
			t.Fatal("setup wrote nothing to the fake host: the comparison below would prove nothing")
		}
		other := *rec
		other.Name, other.Context = "fake-agent", "fake-agent"
		if err := recs.Put(&other); err != nil {
			t.Fatal(err)
		}
		if sharing, err := recs.SharingHost(rec); err != nil || len(sharing) != 1 || sharing[0] != "fake-agent" {
			t.Errorf("SharingHost = %v, %v; want the other record of the endpoint", sharing, err)
		}
		removed := false
		restored, err := recs.Teardown(context.Background(), h, rec, func() error {
			removed = true
			if contextFails {
				return errors.New("keyring locked")
			}
			return nil
		})
		if !restored || !removed {
			t.Errorf("contextFails=%v: restored %v, context removal asked %v", contextFails, restored, removed)
		}
		var ce *ContextRemovalError
		_, getErr := recs.Get("fake")
		switch {
		case contextFails && (!errors.As(err, &ce) || getErr != nil):
			t.Errorf("a failed context removal: err %v, record %v; want a ContextRemovalError and the record kept", err, getErr)
		case !contextFails && (err != nil || !errors.Is(getErr, ErrNoEngine)):
			t.Errorf("teardown: err %v, record %v; want the record gone", err, getErr)
		}
		for p, f := range before {
			if g, ok := h.files[p]; !ok || string(g.data) != string(f.data) {
				t.Errorf("contextFails=%v: %s is not as before setup", contextFails, p)
			}
		}
		for p := range h.files {
			if _, ok := before[p]; !ok {
				t.Errorf("contextFails=%v: %s is left on the host", contextFails, p)
			}
		}
	}
}
