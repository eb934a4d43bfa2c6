package rotation

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/internal/journal"
	"github.com/docker-tls/docker-tls/internal/keyringtest"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
	_ "github.com/docker-tls/docker-tls/remoteca/drivers"
)

type reportLog struct{ rotating []int }

func (r *reportLog) Excluded(string, int)               {}
func (r *reportLog) Rotating(_ *State, following int)   { r.rotating = append(r.rotating, following) }
func (r *reportLog) LeftBehind(left []*remoteca.Issued) {}

// newJob is a rotation of CA "team" on a machine with one context of it
// and no engine or CA service.
func newJob(t *testing.T) (*Job, *contexts.Store, *reportLog) {
	t.Helper()
	dir := t.TempDir()
	keys := keystore.Stores{Dir: filepath.Join(dir, "tls", "keys"), Backend: keyringtest.New()}
	j := journal.New(filepath.Join(dir, "tls"), keys.TempDir())
	cas := castore.New(filepath.Join(dir, "tls", "ca"), keys, j)
	store := contexts.New(dir, keys, j)
	old := newCA(t, "team CA")
	stored, err := cas.Create("team", old, castore.CreateOptions{KeyStore: keystore.KindFile})
	if err != nil {
		t.Fatal(err)
	}
	addContext(t, store, old, "build", "tcp://build:2376")
	log := &reportLog{}
	return &Job{
		CAs: cas, Records: Records{Dir: filepath.Join(dir, "tls", "rotations")}, Engines: engine.Records{Dir: filepath.Join(dir, "tls", "engines")},
		Contexts: store, CA: stored, Signer: old,
		OpenDB:   func(context.Context, *castore.CA) (*remoteca.DB, error) { return nil, nil },
		Parallel: 2, Report: log,
	}, store, log
}

// TestJobCarriesOnAndStopsAtAFailedEngine runs a rotation whose one engine
// cannot be reached: the context goes first and trusts both CAs, the
// engine's step fails, and the run stops with the phase's error and its
// record kept.
func TestJobCarriesOnAndStopsAtAFailedEngine(t *testing.T) {
	job, store, log := newJob(t)
	rec := &engine.Record{Name: "build", Context: "build", CA: "team", CAFingerprint: pki.Fingerprint(job.CA.Cert), Host: "tcp://build:2376", TLSDir: "/etc/docker/tls", Status: engine.StatusReady}
	if err := job.Engines.Put(rec); err != nil {
		t.Fatal(err)
	}
	job.Dial = func(context.Context, *engine.Record) (Session, error) {
		return nil, errors.New("ssh: no route to host")
	}
	job.Check = func(string) (func(context.Context) error, error) {
		return func(context.Context) error { return nil }, nil
	}
	st, err := job.Record(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := job.Records.Get("team"); err != nil || len(got.Targets) != 2 {
		t.Fatalf("recorded %+v, %v; want the engine and its context", got, err)
	}
	_, err = job.Continue(context.Background(), st)
	var pe *PhaseError
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Name != "build" || pe.Failed[0].Kind != Engine {
		t.Fatalf("Continue = %v, want the phase error of engine build", err)
	}
	if trusts, _ := pems(t, store, "build"); len(trusts) != 2 {
		t.Errorf("the context trusts %v, want the old and the new CA", trusts)
	}
	if got, err := job.Records.Get("team"); err != nil || got.NewFingerprint == "" {
		t.Errorf("the record after the failure: %+v, %v", got, err)
	}
	if ca, err := job.CAs.Get("team"); err != nil || ca.NextCert == nil {
		t.Errorf("the new CA is not kept beside the old one for --continue (%v)", err)
	}
	if !slices.Equal(log.rotating, []int{0}) {
		t.Errorf("Rotating told %v, want once with no laptop following", log.rotating)
	}
}

// TestJobWithoutEnginesRetiresTheOldCA: contexts of engines docker tls did
// not set up are left alone, and the CA itself rotates.
func TestJobWithoutEnginesRetiresTheOldCA(t *testing.T) {
	job, store, _ := newJob(t)
	st, err := job.Record(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Targets) != 0 || len(st.Outside) != 1 || st.Outside[0].Context != "build" {
		t.Fatalf("planned targets %v, outside %v; want build left alone", st.Targets, st.Outside)
	}
	done, err := job.Continue(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if pki.Fingerprint(done.Cert) != st.NewFingerprint || done.NextCert != nil {
		t.Errorf("the CA after the rotation is not the new one alone")
	}
	if trusts, cert := pems(t, store, "build"); !slices.Equal(trusts, []string{"team CA"}) || cert != "team CA|me@build" {
		t.Errorf("the context left alone was changed: trusts %v, holds %s", trusts, cert)
	}
	if _, err := job.Records.Get("team"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the record is still there after the rotation: %v", err)
	}
}

func TestJobAbortsBeforeAndAfterTheNewCA(t *testing.T) {
	for _, started := range []bool{false, true} {
		job, store, _ := newJob(t)
		st, err := job.Record(nil)
		if err != nil {
			t.Fatal(err)
		}
		if started {
			if _, err := Start(job.CAs, st, job.CA, job.Signer, nil, job.Records.Put); err != nil {
				t.Fatal(err)
			}
			// As a second run would find it, waiting for the lock.
			if err := job.Reload(); err != nil {
				t.Fatal(err)
			}
			if job.CA.NextCert == nil {
				t.Fatal("Reload did not see the new CA")
			}
		}
		res, err := job.Abort(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		if res.NewCAMade != started {
			t.Errorf("started=%v: NewCAMade = %v", started, res.NewCAMade)
		}
		ca, err := job.CAs.Get("team")
		if err != nil || ca.NextCert != nil || !ca.Cert.Equal(job.Signer.Cert) {
			t.Errorf("started=%v: the CA after the abort is not the old one alone (%v)", started, err)
		}
		if trusts, cert := pems(t, store, "build"); !slices.Equal(trusts, []string{"team CA"}) || cert != "team CA|me@build" {
			t.Errorf("started=%v: the context trusts %v and holds %s", started, trusts, cert)
		}
		if _, err := job.Records.Get("team"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("started=%v: the record is still there: %v", started, err)
		}
	}
}

func TestAddExclusions(t *testing.T) {
	tests := []struct {
		had, add, want []string
		excluded       bool // Excluded before
		added          bool
	}{
		{had: nil, add: nil, want: nil, excluded: true, added: false},
		{had: []string{"a"}, add: []string{"a"}, want: []string{"a"}, excluded: true, added: false},
		{had: []string{"a"}, add: []string{"b", "a", "b"}, want: []string{"a", "b"}, excluded: true, added: true},
	}
	for _, tc := range tests {
		st := &State{Exclude: slices.Clone(tc.had), Excluded: tc.excluded}
		if got := st.AddExclusions(tc.add); got != tc.added || !slices.Equal(st.Exclude, tc.want) {
			t.Errorf("%v + %v: added %v, %v; want %v, %v", tc.had, tc.add, got, st.Exclude, tc.added, tc.want)
		}
		if st.Excluded == tc.added {
			t.Errorf("%v + %v: Excluded = %v; a new name must be revoked again", tc.had, tc.add, st.Excluded)
		}
	}
}

func TestCheckExclusions(t *testing.T) {
	ctx := context.Background()
	db, err := remoteca.OpenDB(ctx, filepath.Join(t.TempDir(), "ca.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ca := newCA(t, "team CA")
	for _, cn := range []string{"alice-laptop", "bob-laptop"} {
		if _, _, err := db.New(ca.Cert.Raw, remoteca.TokenOptions{Profile: pki.ClientProfile, CN: cn, TTL: time.Hour, Uses: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := CheckExclusions(ctx, db, []string{"bob-laptop", "alice-laptop"}); err != nil {
		t.Errorf("known names refused: %v", err)
	}
	err = CheckExclusions(ctx, db, []string{"alice-laptop", "alice-laptpo"})
	var unknown *UnknownIdentityError
	if !errors.As(err, &unknown) || unknown.Name != "alice-laptpo" || !slices.Contains(unknown.Near, "alice-laptop") {
		t.Errorf("a misspelt name: %v (%+v), want it named with alice-laptop near", err, unknown)
	}
}
