package agent

import (
	"fmt"
	"time"

	"github.com/docker-tls/docker-tls/internal/records"
)

// Failures keeps the last failure of each context's automatic renewal,
// one small record per context ($DOCKER_CONFIG/tls/renewals), written by
// the agent and read by ls and verify, which warn about it. It holds no
// secret. Only the agent writes a failure; a renewal by hand clears it.
type Failures struct{ Dir string }

// Failure is a context's failing automatic renewal.
type Failure struct {
	Since    time.Time `json:"since"`
	Last     time.Time `json:"last"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"`
}

func (s Failures) dir() records.Dir[Failure] { return records.Dir[Failure]{Path: s.Dir} }

// Failing lists the contexts with a recorded failure.
func (s Failures) Failing() []string {
	names, _ := s.dir().Names()
	return names
}

// Get reads the failure recorded for a context.
func (s Failures) Get(name string) (*Failure, error) { return s.dir().Get(name) }

// Failed records one more failed attempt. A failure to record it is
// dropped: the renewal's own error is what the caller reports.
func (s Failures) Failed(name string, err error, now time.Time) {
	f, gerr := s.Get(name)
	if gerr != nil {
		f = &Failure{Since: now}
	}
	f.Last, f.Attempts, f.Error = now, f.Attempts+1, err.Error()
	_ = s.dir().Put(name, f)
}

// Clear forgets a context's failure after a renewal succeeded. A stale
// record left by an error here only repeats a warning until the next
// success.
func (s Failures) Clear(name string) { _ = s.dir().Remove(name) }

// Message says in one sentence that a context's automatic renewal fails,
// or returns "".
func (f *Failure) Message(name string) string {
	if f == nil {
		return ""
	}
	return fmt.Sprintf("the automatic renewal of %q has failed %d time(s) since %s: %s", name, f.Attempts, f.Since.Local().Format(time.RFC3339), f.Error)
}
