package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/remoteca"
)

// caDBEnv names the service database when --db is not given, so that every
// command of a team's CA host reaches the same one.
const caDBEnv = "DOCKER_TLS_CA_DB"

// dbOptions choose where a served CA keeps its tokens, inventory and
// revocations: the CA's own SQLite file, or a PostgreSQL database that
// several ca serve replicas share.
type dbOptions struct {
	url string
}

func (o *dbOptions) install(f *pflag.FlagSet) {
	f.StringVar(&o.url, "db", "", "Service database: postgres://… (or env:VAR, file:PATH holding it); default $"+caDBEnv+", else the CA's own SQLite file")
}

// resolve returns the database URL to use ("" for the CA's SQLite file)
// and, when a password was typed on the command line, a warning.
func (o dbOptions) resolve() (string, string, error) {
	ref := o.url
	if ref == "" {
		ref = os.Getenv(caDBEnv)
	}
	if ref == "" {
		return "", "", nil
	}
	v, err := readSecretRef(ref, "--db")
	if err != nil {
		return "", "", err
	}
	if !remoteca.IsPostgresURL(v) {
		return "", "", fmt.Errorf("--db %s: give a postgres://USER@HOST/DB URL (the default is the CA's own SQLite file)", remoteca.RedactURL(v))
	}
	u, err := url.Parse(v)
	if err != nil {
		return "", "", fmt.Errorf("--db %s: the URL does not parse", remoteca.RedactURL(v))
	}
	warn := ""
	if _, has := u.User.Password(); (has || u.Query().Has("password")) && o.url == v {
		warn = "a password in --db on the command line can be read by other users (ps) and stays in your shell history: use --db env:VAR, --db file:PATH, $" + caDBEnv + " or a ~/.pgpass file"
	}
	return v, warn, nil
}

// open opens the service database of a CA. Its own SQLite file lives
// beside the CA, in $DOCKER_CONFIG/tls/services/NAME/service.db, not in the
// CA's directory, which every change of the CA (a key moved, a rotation)
// replaces whole. An older docker-tls's database there is moved out once,
// and its tokens.json and issued.jsonl are imported once (and kept as
// *.migrated).
func (o dbOptions) open(ctx context.Context, a *app, ca *castore.CA) (*remoteca.DB, error) {
	where, warn, err := o.resolve()
	if err != nil {
		return nil, err
	}
	if warn != "" {
		fmt.Fprintln(a.cli.Err(), "warning:", warn)
	}
	if where == "" {
		where = filepath.Join(a.stateDir(), "services", ca.Name, "service.db")
		if err := moveLegacyDB(filepath.Join(ca.Dir, "service.db"), where); err != nil {
			return nil, fmt.Errorf("the service database of CA %q: %w", ca.Name, err)
		}
	}
	db, err := remoteca.OpenDB(ctx, where)
	if err != nil {
		return nil, fmt.Errorf("the service database of CA %q: %w", ca.Name, err)
	}
	if !remoteca.IsPostgresURL(where) {
		if err := db.Migrate(ctx, filepath.Join(ca.Dir, "tokens.json"), filepath.Join(ca.Dir, "issued.jsonl")); err != nil {
			db.Close()
			return nil, fmt.Errorf("the service database of CA %q: %w", ca.Name, err)
		}
	}
	return db, nil
}

// openCA reads the CA name and opens its service database, for the
// commands that need no more of the CA than that.
func (o dbOptions) openCA(ctx context.Context, a *app, name string) (*castore.CA, *remoteca.DB, error) {
	stored, err := a.cas().Get(name)
	if err != nil {
		return nil, nil, err
	}
	db, err := o.open(ctx, a, stored)
	if err != nil {
		return nil, nil, err
	}
	return stored, db, nil
}

// openExisting opens a CA's service database only if it exists: nil, nil
// when the CA was never served from its own SQLite file (no --db, no
// $DOCKER_TLS_CA_DB). For the checks a command makes before it writes
// anything: opening the default database would create it.
func (o dbOptions) openExisting(ctx context.Context, a *app, ca *castore.CA) (*remoteca.DB, error) {
	where, _, err := o.resolve()
	if err != nil {
		return nil, err
	}
	if where == "" {
		where = filepath.Join(a.stateDir(), "services", ca.Name, "service.db")
		_, errNew := os.Stat(where)
		_, errOld := os.Stat(filepath.Join(ca.Dir, "service.db"))
		if errNew != nil && errOld != nil {
			return nil, nil
		}
	}
	return o.open(ctx, a, ca)
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
