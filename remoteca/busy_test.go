package remoteca

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetryBusy: a write told SQLITE_BUSY at once (here: a connection
// without a busy timeout, while another holds the write lock) is tried
// again until the lock is gone; another error is not retried.
func TestRetryBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.db")
	holder, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.Exec(`CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	impatient, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer impatient.Close()
	tx, err := holder.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = tx.Commit()
	}()
	var tries atomic.Int32
	err = retryBusy(context.Background(), func() error {
		tries.Add(1)
		_, err := impatient.Exec(`INSERT INTO t VALUES (2)`)
		return err
	})
	if err != nil || tries.Load() < 2 {
		t.Fatalf("after %d tries: %v", tries.Load(), err)
	}
	tries.Store(0)
	err = retryBusy(context.Background(), func() error {
		tries.Add(1)
		_, err := impatient.Exec(`INSERT INTO nosuch VALUES (1)`)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "no such table") || tries.Load() != 1 {
		t.Fatalf("another error was retried (%d tries): %v", tries.Load(), err)
	}
}
