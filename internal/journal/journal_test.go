package journal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBeginNeedsTheLock(t *testing.T) {
	j := New(t.TempDir())
	if _, err := j.Begin("x", "op", "n", nil); err == nil || !strings.Contains(err.Error(), "without the state lock") {
		t.Fatalf("Begin without the lock: %v", err)
	}
	if _, err := j.ScratchDir("p"); err == nil {
		t.Fatal("ScratchDir without the lock")
	}
}

// An entry left by a "crashed" holder (released without Done) is handed to
// its owner at the next Lock, oldest first, and removed once recovered.
func TestLockRecoversPendingEntries(t *testing.T) {
	dir := t.TempDir()
	j := New(dir)
	release, err := j.Lock()
	if err != nil {
		t.Fatal(err)
	}
	type data struct{ N int }
	for i := range 3 {
		e, err := j.Begin("ctx", "create", "n", data{i})
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if err := e.Advance("key-stored"); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Millisecond) // distinct, ordered names
	}
	other, err := j.Begin("someone-else", "op", "m", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = other
	release()

	var seen []string
	j2 := New(dir)
	j2.Handle("ctx", func(e *Entry) error {
		var d data
		if err := e.Decode(&d); err != nil {
			return err
		}
		seen = append(seen, e.Phase+"/"+string(rune('0'+d.N)))
		return nil
	})
	release, err = j2.Lock()
	if err != nil {
		t.Fatal(err)
	}
	left, _ := j2.Pending()
	release()
	if strings.Join(seen, ",") != "intent/0,key-stored/1,intent/2" {
		t.Fatalf("recovered %v", seen)
	}
	// An owner this process does not know is left for one that does.
	if len(left) != 1 || left[0].Owner != "someone-else" {
		t.Fatalf("left %v", left)
	}
}

// A Recoverer that fails keeps its entry and fails Lock with a sentence
// that names the change; the lock is free again afterwards.
func TestFailedRecoveryFailsTheLock(t *testing.T) {
	dir := t.TempDir()
	j := New(dir)
	release, _ := j.Lock()
	if _, err := j.Begin("ctx", "create", "prod", nil); err != nil {
		t.Fatal(err)
	}
	release()
	j.Handle("ctx", func(*Entry) error { return errors.New("the keyring is locked") })
	if _, err := j.Lock(); err == nil || !strings.Contains(err.Error(), `ctx create of ctx "prod"`) || !strings.Contains(err.Error(), "the keyring is locked") {
		t.Fatalf("Lock = %v", err)
	}
	j.Handle("ctx", func(*Entry) error { return nil })
	release, err := j.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := j.Pending(); len(left) != 0 {
		t.Fatalf("left %v", left)
	}
	release()
}

func TestScratchIsEmptiedAtLock(t *testing.T) {
	dir := t.TempDir()
	extra := filepath.Join(dir, "keys", ".tmp")
	j := New(dir, extra)
	release, _ := j.Lock()
	d, err := j.ScratchDir("ctx-")
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o700 {
		t.Fatalf("scratch dir mode %v", fi.Mode())
	}
	_ = os.WriteFile(filepath.Join(d, "key.pem"), []byte("secret"), 0o600)
	_ = os.MkdirAll(extra, 0o700)
	_ = os.WriteFile(filepath.Join(extra, ".k.pem.tmp-1"), []byte("secret"), 0o600)
	release()
	release, _ = j.Lock()
	defer release()
	for _, sd := range []string{filepath.Join(dir, "tmp"), extra} {
		if names, _ := readNames(sd); len(names) != 0 {
			t.Fatalf("%s still holds %v", sd, names)
		}
	}
}

// The lock excludes goroutines of one process and other holders of the
// same directory (another process, here another Journal value).
func TestLockExcludes(t *testing.T) {
	dir := t.TempDir()
	j := New(dir)
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := j.Lock()
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			if n > most.Load() {
				most.Store(n)
			}
			time.Sleep(2 * time.Millisecond)
			inside.Add(-1)
			release()
		}()
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Fatalf("%d holders at once", most.Load())
	}
	release, _ := j.Lock()
	other := New(dir)
	other.SetTimeout(50 * time.Millisecond)
	if _, err := other.Lock(); err == nil || !strings.Contains(err.Error(), "another docker-tls process") {
		t.Fatalf("second holder: %v", err)
	}
	release()
	release, err := other.Lock()
	if err != nil {
		t.Fatal(err)
	}
	release()
}

func TestDamagedEntryIsNamed(t *testing.T) {
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "journal"), 0o700)
	bad := filepath.Join(dir, "journal", "20260101T000000.000000000-00000000.json")
	_ = os.WriteFile(bad, []byte("{not json"), 0o600)
	if _, err := New(dir).Lock(); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Lock = %v", err)
	}
}
