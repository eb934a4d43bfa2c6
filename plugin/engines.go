package plugin

import (
	"context"
	"fmt"
	"sync"

	"github.com/docker-tls/docker-tls/engine"
)

// engineRecords are the engines named, or every engine with all (a damaged
// record is reported on stderr beside the others, not instead of them).
// checkEngineSelection refuses a choice of engines to verb that is not
// names or --all, and a --parallel out of range.
func checkEngineSelection(names []string, all bool, parallel int, verb string) error {
	if err := namesOrAll(names, all, true, "engine", verb); err != nil {
		return err
	}
	return checkParallel(parallel)
}

func (a *app) engineRecords(names []string, all bool) ([]*engine.Record, error) {
	if all {
		recs, bad, err := a.engines().List()
		if err != nil {
			return nil, err
		}
		for name, err := range bad {
			fmt.Fprintf(a.cli.Err(), "engine %s: %v\n", name, err)
		}
		return recs, nil
	}
	var recs []*engine.Record
	for _, n := range names {
		rec, err := a.engines().Get(n)
		if err != nil {
			return nil, engineNotFound(err, n)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// eachEngine runs do for every engine, parallel at a time, printing one
// line per engine as each finishes ("NAME: what it did" on stdout, or
// "NAME: FAILED: why" on stderr); one failing does not stop the others. It returns the names of
// those that failed.
func (a *app) eachEngine(ctx context.Context, recs []*engine.Record, parallel int, do func(context.Context, *engine.Record) (string, error)) []string {
	var (
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
		sem    = make(chan struct{}, parallel)
	)
	for _, rec := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			msg, err := do(ctx, rec)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, rec.Name)
				fmt.Fprintf(a.cli.Err(), "%s: FAILED: %v\n", rec.Name, err)
				return
			}
			fmt.Fprintf(a.cli.Out(), "%s: %s\n", rec.Name, msg)
		}()
	}
	wg.Wait()
	return failed
}
