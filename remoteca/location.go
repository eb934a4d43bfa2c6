package remoteca

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker-tls/docker-tls/internal/fsutil"
)

// Location is where a CA's service keeps its tokens, inventory and
// revocations: a PostgreSQL database that several ca serve replicas share
// (URL), else the CA's own SQLite file under Dir
// ($DOCKER_CONFIG/tls/services/NAME/service.db), beside the CA's directory
// rather than in it: every change of the CA (a key moved, a rotation)
// replaces that directory whole.
type Location struct {
	URL string
	Dir string
}

func (l Location) sqlite(ca string) string { return filepath.Join(l.Dir, ca, "service.db") }

// Open opens the service database of CA ca, whose directory is caDir. An
// older docker-tls's SQLite file in caDir is moved out once, and its
// tokens.json and issued.jsonl are imported once (and kept as *.migrated).
func (l Location) Open(ctx context.Context, ca, caDir string) (*DB, error) {
	where := l.URL
	if where == "" {
		where = l.sqlite(ca)
		if err := moveLegacyDB(filepath.Join(caDir, "service.db"), where); err != nil {
			return nil, fmt.Errorf("the service database of CA %q: %w", ca, err)
		}
	}
	db, err := OpenDB(ctx, where)
	if err != nil {
		return nil, fmt.Errorf("the service database of CA %q: %w", ca, err)
	}
	if l.URL == "" {
		if err := retryBusy(ctx, func() error {
			return db.Migrate(ctx, filepath.Join(caDir, "tokens.json"), filepath.Join(caDir, "issued.jsonl"))
		}); err != nil {
			db.Close()
			return nil, fmt.Errorf("the service database of CA %q: %w", ca, err)
		}
	}
	return db, nil
}

// OpenExisting is Open for the checks a command makes before it writes
// anything: nil, nil when the CA has no SQLite file of its own (it was
// never served without a URL), since opening it would create it.
func (l Location) OpenExisting(ctx context.Context, ca, caDir string) (*DB, error) {
	if l.URL == "" {
		_, errNew := os.Stat(l.sqlite(ca))
		_, errOld := os.Stat(filepath.Join(caDir, "service.db"))
		if errNew != nil && errOld != nil {
			return nil, nil
		}
	}
	return l.Open(ctx, ca, caDir)
}

// moveLegacyDB moves a SQLite database (with its -wal and -shm files) from
// where an older docker-tls kept it, unless one is already at to.
func moveLegacyDB(from, to string) error {
	if _, err := os.Stat(from); err != nil {
		return nil
	}
	if _, err := os.Stat(to); err == nil {
		return nil
	}
	if err := fsutil.MkdirPrivate(filepath.Dir(to)); err != nil {
		return err
	}
	// The WAL first: a database file whose WAL is missing loses the
	// transactions not yet checkpointed into it.
	for _, suffix := range []string{"-wal", "-shm", ""} {
		if err := os.Rename(from+suffix, to+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
