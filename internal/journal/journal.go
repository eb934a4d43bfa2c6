// Package journal owns the order in which docker-tls changes more than one
// store at once (a key in the OS keyring or the file key store, a Docker
// context, a CA directory) and the lock under which it does so.
//
// The rule every such change follows: under the state lock, first write
// down here what is about to happen (which key id will be created, what it
// replaces; never a secret), then carry it out step by step, advancing the
// entry's phase at each commit point; remove the old object only after the
// new one is committed, and the entry last. Whatever kills the process, the
// entry survives it, and the next command that takes the lock hands it to
// its owner's Recoverer, which finishes the change or undoes it. So the
// stores are never left disagreeing for longer than until the next command,
// and a secret is never created anywhere without a record saying whose it
// is.
//
// The lock is one flock(2) file for the whole $DOCKER_CONFIG/tls: the
// changes it guards take milliseconds, and one lock rules out every
// ordering question between stores (a key migration against a renewal,
// say). The OS releases it when the process dies, so a crash never leaves
// it held. Within a process it also excludes other goroutines; it is not
// re-entrant, so the stores take it only in their exported methods.
package journal

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker-tls/docker-tls/internal/crashpoint"
	"github.com/docker-tls/docker-tls/internal/fsutil"
)

// DefaultTimeout is how long Lock waits for another docker-tls process.
const DefaultTimeout = 30 * time.Second

// Entry is one change in progress.
type Entry struct {
	// Owner is the package that made the entry and recovers it ("context", "ca").
	Owner string `json:"owner"`
	// Op names the change ("create", "remove", "move-key" …).
	Op string `json:"op"`
	// Name is the object changed (a context or CA name).
	Name string `json:"name"`
	// Phase is the last commit point passed; "intent" right after Begin.
	Phase   string          `json:"phase"`
	Started time.Time       `json:"started"`
	Data    json.RawMessage `json:"data,omitempty"`

	file string
	j    *Journal
}

// PhaseIntent is the phase of an entry that Begin has just written: nothing
// has been created yet, or what was is not committed.
const PhaseIntent = "intent"

// Decode unmarshals the entry's data into v.
func (e *Entry) Decode(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("journal entry %s: %w", e.file, err)
	}
	return nil
}

// Step names the entry's crash point for phase, for the crashtest build.
func (e *Entry) Step(phase string) string { return e.Owner + "-" + e.Op + ":" + phase }

// Advance records that the change passed a commit point.
func (e *Entry) Advance(phase string) error {
	e.Phase = phase
	if err := e.j.write(e); err != nil {
		return err
	}
	crashpoint.Hit(e.Step(phase))
	return nil
}

// Done removes the entry: the change is complete (or undone).
func (e *Entry) Done() error {
	crashpoint.Hit(e.Step("done"))
	if err := os.Remove(e.file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func (e *Entry) String() string {
	return fmt.Sprintf("%s %s of %s %q (phase %s, started %s)", e.Owner, e.Op, e.Owner, e.Name, e.Phase, e.Started.Local().Format(time.DateTime))
}

// Recoverer finishes or undoes an interrupted change of its owner. It is
// called with the lock held; when it returns nil the entry is removed.
type Recoverer func(*Entry) error

// Journal is the journal and lock of one $DOCKER_CONFIG/tls directory.
type Journal struct {
	dir      string
	lockPath string
	scratch  []string
	timeout  time.Duration

	excl    sync.Mutex // goroutines of this process, as flock excludes processes
	mu      sync.Mutex // the fields below
	held    bool
	release func()
	owners  map[string]Recoverer
}

// New returns the journal of stateDir ($DOCKER_CONFIG/tls): entries in
// stateDir/journal, the lock in stateDir/locks/state.lock, and
// stateDir/tmp as the scratch directory whose contents are stale whenever
// the lock is free. scratch names more such directories.
func New(stateDir string, scratch ...string) *Journal {
	return &Journal{
		dir:      filepath.Join(stateDir, "journal"),
		lockPath: filepath.Join(stateDir, "locks", "state.lock"),
		scratch:  append([]string{filepath.Join(stateDir, "tmp")}, scratch...),
		timeout:  DefaultTimeout,
		owners:   map[string]Recoverer{},
	}
}

// SetTimeout changes how long Lock waits for another process.
func (j *Journal) SetTimeout(d time.Duration) { j.timeout = d }

// Handle registers the Recoverer of owner's entries.
func (j *Journal) Handle(owner string, r Recoverer) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.owners[owner] = r
}

// Lock takes the state lock (waiting for another process up to the
// timeout) and brings the stores back to a consistent state: stale scratch
// files go and every entry an interrupted command left is recovered by its
// owner, oldest first. With nothing to do that costs two directory reads.
// Call the returned function to release.
func (j *Journal) Lock() (func(), error) {
	j.excl.Lock()
	release, err := fsutil.Lock(j.lockPath, j.timeout)
	if err != nil {
		j.excl.Unlock()
		return nil, err
	}
	j.mu.Lock()
	j.held, j.release = true, release
	owners := maps.Clone(j.owners)
	j.mu.Unlock()
	unlock := j.unlockOnce()
	err = j.recoverLocked(owners)
	if err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

func (j *Journal) unlockOnce() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			j.mu.Lock()
			j.held = false
			j.release()
			j.release = nil
			j.mu.Unlock()
			j.excl.Unlock()
		})
	}
}

// Held reports whether the lock is held by this process.
func (j *Journal) Held() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.held
}

func (j *Journal) recoverLocked(owners map[string]Recoverer) error {
	for _, d := range j.scratch {
		if err := cleanDir(d); err != nil {
			return err
		}
	}
	entries, err := j.pending()
	if err != nil {
		return err
	}
	for _, e := range entries {
		r, ok := owners[e.Owner]
		if !ok {
			continue // an owner this process does not load; left for one that does
		}
		if err := r(e); err != nil {
			return fmt.Errorf("an interrupted docker tls command left a %s unfinished, and it cannot be completed now: %w; fix that and run the command again", e, err)
		}
		if err := e.Done(); err != nil {
			return err
		}
	}
	return nil
}

// cleanDir removes everything inside dir: what a killed command left in a
// scratch directory (staging directories, temporary copies of keys).
func cleanDir(dir string) error {
	names, err := readNames(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("remove what an interrupted command left: %w", err)
		}
	}
	return nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	slices.Sort(names)
	return names, nil
}

// Pending lists the entries of interrupted changes (the lock must be held
// for the answer to mean anything).
func (j *Journal) Pending() ([]*Entry, error) { return j.pending() }

func (j *Journal) pending() ([]*Entry, error) {
	names, err := readNames(j.dir)
	if err != nil {
		return nil, err
	}
	var out []*Entry
	for _, n := range names {
		if !strings.HasSuffix(n, ".json") || strings.HasPrefix(n, ".") {
			continue
		}
		p := filepath.Join(j.dir, n)
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		e := &Entry{file: p, j: j}
		if err := json.Unmarshal(data, e); err != nil {
			return nil, fmt.Errorf("journal entry %s is damaged (%v): it holds no secret; move it out of the way and run the command again", p, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Begin writes a new entry for a change owner is about to make to name
// and returns it in PhaseIntent. data must hold no secret. The lock must be
// held.
func (j *Journal) Begin(owner, op, name string, data any) (*Entry, error) {
	if !j.Held() {
		return nil, fmt.Errorf("journal: %s %s of %s without the state lock", owner, op, name)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	now := time.Now().UTC()
	file := filepath.Join(j.dir, now.Format("20060102T150405.000000000")+"-"+hex.EncodeToString(rnd[:])+".json")
	e := &Entry{Owner: owner, Op: op, Name: name, Phase: PhaseIntent, Started: now, Data: raw, file: file, j: j}
	if err := fsutil.MkdirPrivate(j.dir); err != nil {
		return nil, err
	}
	if err := j.write(e); err != nil {
		return nil, err
	}
	crashpoint.Hit(e.Step(PhaseIntent))
	return e, nil
}

// Update rewrites the entry's data (in its current phase).
func (e *Entry) Update(data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	e.Data = raw
	return e.j.write(e)
}

func (j *Journal) write(e *Entry) error {
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	// Staged in the scratch directory, so a killed write leaves its
	// temporary file where the next Lock removes it.
	if err := fsutil.MkdirPrivate(j.scratch[0]); err != nil {
		return err
	}
	if err := fsutil.WriteFileVia(j.scratch[0], e.file, append(data, '\n'), fsutil.PrivateFile, true); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// ScratchDir makes a private directory for staging files under the first
// scratch directory; whatever a killed command leaves there is removed the
// next time the lock is taken. The lock must be held.
func (j *Journal) ScratchDir(prefix string) (string, error) {
	if !j.Held() {
		return "", errors.New("journal: scratch directory without the state lock")
	}
	if err := fsutil.MkdirPrivate(j.scratch[0]); err != nil {
		return "", err
	}
	d, err := os.MkdirTemp(j.scratch[0], prefix)
	if err != nil {
		return "", err
	}
	return d, nil
}
