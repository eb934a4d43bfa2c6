package plugin

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/docker-tls/docker-tls/castore"
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

// location is where the service database of this command's CA is, warning
// about a password typed on the command line.
func (o dbOptions) location(a *app) (remoteca.Location, error) {
	where, warn, err := o.resolve()
	if err != nil {
		return remoteca.Location{}, err
	}
	if warn != "" {
		fmt.Fprintln(a.cli.Err(), "warning:", warn)
	}
	return remoteca.Location{URL: where, Dir: filepath.Join(a.stateDir(), "services")}, nil
}

// open opens the service database of a CA (remoteca.Location.Open).
func (o dbOptions) open(ctx context.Context, a *app, ca *castore.CA) (*remoteca.DB, error) {
	loc, err := o.location(a)
	if err != nil {
		return nil, err
	}
	return loc.Open(ctx, ca.Name, ca.Dir)
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

// openExisting opens a CA's service database only if it exists
// (remoteca.Location.OpenExisting), for the checks before any write.
func (o dbOptions) openExisting(ctx context.Context, a *app, ca *castore.CA) (*remoteca.DB, error) {
	loc, err := o.location(a)
	if err != nil {
		return nil, err
	}
	return loc.OpenExisting(ctx, ca.Name, ca.Dir)
}
