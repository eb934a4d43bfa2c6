package engine

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"path"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// clientOf issues a client certificate from ca, as a context holds.
func clientOf(t *testing.T, ca *pki.CA) *x509.Certificate {
	t.Helper()
	key, err := pki.GenerateKey(pki.DefaultKeyType)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "me@laptop", PublicKey: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// setUp runs engine setup's transaction against h with ca, as the
// command does after showing the plan.
func setUp(t *testing.T, recs Records, h *fakeHost, ca *pki.CA, made func() error) (*Record, error) {
	t.Helper()
	ctx := context.Background()
	facts, err := Inspect(ctx, h, 2376, DefaultTLSDir)
	if err != nil {
		t.Fatal(err)
	}
	sans, err := SANs("fake", facts, []string{"build.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := PlanSetup(facts, Request{Port: 2376, TLSDir: DefaultTLSDir, CA: ca.Cert, SANs: sans, RenewWithin: 30 * 24 * time.Hour, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	_, recErr := recs.Get("fake")
	return recs.Setup(ctx, h, Setup{
		Engine: Record{Name: "fake", Dest: "root@fake", Context: "fake", CA: "default", CAFingerprint: pki.Fingerprint(ca.Cert),
			Host: "tcp://fake:2376", Port: 2376, TLSDir: DefaultTLSDir, SANs: sans.Strings()},
		Facts: facts, Plan: plan, Issuer: ca, ReadyTimeout: 500 * time.Millisecond,
		Verify:   h.serves(DefaultTLSDir, []*x509.Certificate{ca.Cert}, clientOf(t, ca)),
		Recorded: recErr == nil, Context: made,
	})
}

func TestSetupThenReissueThroughARotation(t *testing.T) {
	ctx := context.Background()
	recs := Records{Dir: t.TempDir()}
	h := newFakeHost(t, 2)
	old := newTestCA(t)
	made := 0
	rec, err := setUp(t, recs, h, old, func() error {
		// The context is made after the host serves TLS, and while the
		// record still says the setup is under way.
		if r, err := recs.Get("fake"); err != nil || r.Status != StatusSettingUp {
			t.Errorf("record while the context is made: %+v, %v", r, err)
		}
		if h.restarts != 1 {
			t.Errorf("the context was made before dockerd restarted")
		}
		made++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if made != 1 || rec.Status != StatusReady || rec.Serial == "" || rec.Mode != ModeDropIn {
		t.Fatalf("setup: made=%d record=%+v", made, rec)
	}
	if saved, err := recs.Get("fake"); err != nil || !reflect.DeepEqual(saved, rec) {
		t.Fatalf("saved record %+v (%v), returned %+v", saved, err, rec)
	}
	key := h.files[path.Join(DefaultTLSDir, "server-key.pem")]
	if key.mode != 0o600 || !bytes.Contains(key.data, []byte("PRIVATE KEY")) {
		t.Fatalf("server key on the host: mode %o, %d bytes", key.mode, len(key.data))
	}
	// The key travels on stdin (base64), never in a script (argv).
	enc := base64.StdEncoding.EncodeToString(key.data)[:40]
	for _, s := range h.scripts {
		if strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, enc) {
			t.Fatalf("a script carries the server key:\n%s", s)
		}
	}
	if h.pending || h.backups[OriginalBackup] == nil {
		t.Errorf("after setup: pending=%v, original backup kept=%v", h.pending, h.backups[OriginalBackup] != nil)
	}

	// A second run finds everything in place.
	facts, err := Inspect(ctx, h, 2376, DefaultTLSDir)
	if err != nil {
		t.Fatal(err)
	}
	sans, _, _ := pki.ParseSANs(rec.SANs)
	plan, err := PlanSetup(facts, Request{Port: 2376, TLSDir: DefaultTLSDir, CA: old.Cert, SANs: sans, RenewWithin: 30 * 24 * time.Hour, Now: time.Now()})
	if err != nil || !plan.UpToDate() {
		t.Fatalf("second plan: %+v, %v", plan, err)
	}

	// engine renew: a new certificate from the same CA.
	oldClient := clientOf(t, old)
	done, err := recs.Reissue(ctx, h, rec, Reissue{Issuer: old, ReadyTimeout: time.Second, Verify: h.serves(DefaultTLSDir, []*x509.Certificate{old.Cert}, oldClient)})
	if err != nil {
		t.Fatal(err)
	}
	if done.Record.Serial == rec.Serial || done.Cert == nil || !done.KeptRunning || done.Running != 2 || h.restarts != 2 {
		t.Fatalf("renew: %+v (restarts %d)", done, h.restarts)
	}
	if saved, _ := recs.Get("fake"); saved.Serial != done.Record.Serial {
		t.Fatalf("renew saved serial %s, want %s", saved.Serial, done.Record.Serial)
	}

	// ca rotate's three engine steps.
	next := newTestCA(t)
	newClient := clientOf(t, next)
	bundle := append(pki.EncodeCertificate(old.Cert), pki.EncodeCertificate(next.Cert)...)
	steps := []struct {
		name       string
		rq         Reissue
		roots      []*x509.Certificate
		newSerial  bool
		fp         string
		oldClients bool
	}{
		{"trust both", Reissue{Trust: bundle}, []*x509.Certificate{old.Cert}, false, pki.Fingerprint(old.Cert), true},
		{"reissued", Reissue{Trust: bundle, Issuer: next}, []*x509.Certificate{next.Cert}, true, pki.Fingerprint(old.Cert), true},
		{"retired", Reissue{Trust: pki.EncodeCertificate(next.Cert)}, []*x509.Certificate{next.Cert}, false, pki.Fingerprint(next.Cert), false},
	}
	prev := done.Record
	for _, st := range steps {
		st.rq.ReadyTimeout, st.rq.Verify = time.Second, h.serves(DefaultTLSDir, st.roots, newClient)
		got, err := recs.Reissue(ctx, h, prev, st.rq)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if (got.Record.Serial != prev.Serial) != st.newSerial || got.Record.CAFingerprint != st.fp {
			t.Errorf("%s: serial %s -> %s, fingerprint %s, want new serial %v and %s", st.name, prev.Serial, got.Record.Serial, got.Record.CAFingerprint, st.newSerial, st.fp)
		}
		err = h.serves(DefaultTLSDir, st.roots, oldClient)(ctx)
		if (err == nil) != st.oldClients {
			t.Errorf("%s: a client of the old CA accepted=%v, want %v", st.name, err == nil, st.oldClients)
		}
		prev = got.Record
	}
}

func TestReissueRollsBackWhatFailsItsCheck(t *testing.T) {
	ctx := context.Background()
	recs := Records{Dir: t.TempDir()}
	h := newFakeHost(t, 1)
	ca := newTestCA(t)
	rec, err := setUp(t, recs, h, ca, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := h.files[path.Join(DefaultTLSDir, "server-cert.pem")]
	wrong := newTestCA(t) // the check trusts another CA: it never passes
	_, err = recs.Reissue(ctx, h, rec, Reissue{Issuer: ca, ReadyTimeout: 300 * time.Millisecond,
		Verify: h.serves(DefaultTLSDir, []*x509.Certificate{wrong.Cert}, clientOf(t, ca))})
	var ae *ApplyError
	if !errors.As(err, &ae) || !ae.Restored || !strings.Contains(ae.Journal, "fake journal line") {
		t.Fatalf("err = %v, want a restored ApplyError with the journal", err)
	}
	if got := h.files[path.Join(DefaultTLSDir, "server-cert.pem")]; !bytes.Equal(got.data, before.data) {
		t.Error("the previous server certificate was not put back")
	}
	if saved, _ := recs.Get("fake"); saved.Serial != rec.Serial {
		t.Errorf("the record moved to serial %s although the host was rolled back", saved.Serial)
	}
	if h.pending || h.backups[runBackup] != nil {
		t.Error("the rollback left the run's backup or the pending mark")
	}
	if err := h.serves(DefaultTLSDir, []*x509.Certificate{ca.Cert}, clientOf(t, ca))(ctx); err != nil {
		t.Errorf("after the rollback dockerd serves the old files: %v", err)
	}
}

func TestFirstSetupRolledBackLeavesNoRecord(t *testing.T) {
	recs := Records{Dir: t.TempDir()}
	h := newFakeHost(t, 0)
	h.failRestarts = 1
	_, err := setUp(t, recs, h, newTestCA(t), func() error { t.Error("a context was made for a failed setup"); return nil })
	var ae *ApplyError
	if !errors.As(err, &ae) || !ae.Restored {
		t.Fatalf("err = %v, want a restored ApplyError", err)
	}
	if _, err := recs.Get("fake"); !errors.Is(err, ErrNoEngine) {
		t.Errorf("record after a rolled-back first setup: %v, want none", err)
	}
	for p := range h.files {
		if managed(p) {
			t.Errorf("%s left on the host", p)
		}
	}
	if len(h.backups) != 0 || h.pending {
		t.Errorf("state left on the host: backups %v, pending %v", len(h.backups), h.pending)
	}
}

func TestSetupWhoseContextFailsStaysListed(t *testing.T) {
	recs := Records{Dir: t.TempDir()}
	h := newFakeHost(t, 0)
	ca := newTestCA(t)
	_, err := setUp(t, recs, h, ca, func() error { return errors.New("keyring locked") })
	var ce *ContextError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "keyring locked") {
		t.Fatalf("err = %v, want a ContextError", err)
	}
	rec, err := recs.Get("fake")
	if err != nil || rec.Status != StatusSettingUp {
		t.Fatalf("record: %+v, %v; want it listed as being set up", rec, err)
	}
	// Run again: the host is in place, only the context is made.
	restarts := h.restarts
	made := false
	rec, err = setUp(t, recs, h, ca, func() error { made = true; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !made || rec.Status != StatusReady || h.restarts != restarts {
		t.Errorf("second run: context made %v, status %s, restarts %d -> %d (want no restart)", made, rec.Status, restarts, h.restarts)
	}
}
