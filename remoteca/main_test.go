package remoteca

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/docker-tls/docker-tls/internal/testpg"
	// The drivers docker-tls-db links; the plugin does not.
	_ "github.com/docker-tls/docker-tls/remoteca/drivers"
)

// pg is the package's PostgreSQL server, started once by TestMain when
// PostgreSQL is installed; pgSkip says why not otherwise.
var (
	pg     *testpg.Server
	pgSkip string
	pgDBs  atomic.Int32
)

func TestMain(m *testing.M) {
	var dir string
	if _, _, err := testpg.Binaries(); err != nil {
		pgSkip = err.Error()
	} else if dir, err = os.MkdirTemp("", "remoteca-pg-"); err != nil {
		pgSkip = err.Error()
	} else if pg, err = testpg.Start(filepath.Join(dir, "pg")); err != nil {
		pgSkip = "PostgreSQL did not start: " + err.Error()
	}
	code := m.Run()
	if pg != nil {
		pg.Stop()
	}
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// backends are the databases every DB test runs against.
var backends = []string{"sqlite", "postgres"}

// openDB opens an empty service database of kind, closed at the end of
// the test; a second call with the same where opens the same database.
func openDB(t testing.TB, kind string) (*DB, string) {
	t.Helper()
	var where string
	switch kind {
	case "sqlite":
		where = filepath.Join(t.TempDir(), "service.db")
	case "postgres":
		if pg == nil {
			t.Skip(pgSkip)
		}
		name := fmt.Sprintf("t%d_%s", pgDBs.Add(1), strings.ToLower(strings.NewReplacer("/", "_", " ", "_", "-", "_").Replace(t.Name())))
		if len(name) > 60 {
			name = name[:60]
		}
		var err error
		if where, err = pg.CreateDB(name); err != nil {
			t.Fatal(err)
		}
	}
	return reopen(t, where), where
}

func reopen(t testing.TB, where string) *DB {
	t.Helper()
	d, err := OpenDB(context.Background(), where)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
