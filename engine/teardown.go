package engine

import (
	"context"
	"fmt"
)

// SharingHost are the other engines recorded at rec's endpoint (another
// name, or another context such as an agent-mode one): tearing rec down
// stops them working too.
func (r Records) SharingHost(rec *Record) ([]string, error) {
	all, _, err := r.List()
	if err != nil {
		return nil, err
	}
	var others []string
	for _, o := range all {
		if o.Name != rec.Name && o.Host == rec.Host {
			others = append(others, o.Name)
		}
	}
	return others, nil
}

// ContextRemovalError is a teardown that restored the host but could not
// remove the engine's context here; the record stays, so that the
// teardown can be run again.
type ContextRemovalError struct {
	Context string
	Err     error
}

func (e *ContextRemovalError) Error() string {
	return fmt.Sprintf("the host is restored, but context %s was not removed: %v", e.Context, e.Err)
}

func (e *ContextRemovalError) Unwrap() error { return e.Err }

// Teardown restores rec's host (see Teardown), then removes what points at
// it from here: the context (removeContext, unless nil) and, last, the
// record, so that a run stopped on the way is run again to the end.
func (r Records) Teardown(ctx context.Context, s Shell, rec *Record, removeContext func() error) (restored bool, err error) {
	if restored, err = Teardown(ctx, s, rec.TLSDir, rec.Port); err != nil {
		return false, err
	}
	if removeContext != nil {
		if err := removeContext(); err != nil {
			return restored, &ContextRemovalError{Context: rec.Context, Err: err}
		}
	}
	return restored, r.Remove(rec.Name)
}
