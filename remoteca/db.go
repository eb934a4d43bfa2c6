package remoteca

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
)

// ErrNoDrivers: this executable links no database driver. docker-tls-db,
// which does, runs the commands that open a database (package dbhelper).
var ErrNoDrivers = errors.New("this docker-tls executable links no database driver: only docker-tls-db opens a CA's database")

// Errors the database refuses an enrollment or a renewal with.
var (
	// ErrIdentityRevoked: the CN was revoked (ca revoke CN).
	ErrIdentityRevoked = errors.New("this identity was revoked by the CA's operator: it can neither enroll nor renew")
	// ErrCertRevoked: the certificate was revoked (ca revoke SERIAL).
	ErrCertRevoked = errors.New("this certificate was revoked by the CA's operator: it cannot renew; ask for a new token (docker tls ca token)")
	// ErrAlreadyRenewed: a certificate renews once; a retry with the same
	// key gets the same answer, another key is refused.
	ErrAlreadyRenewed = errors.New("this certificate was already renewed with another key")
	// ErrSignInUsed: an ID token gets one certificate; a retry with the
	// same key gets it again, another key is refused.
	ErrSignInUsed = errors.New("this sign-in was already used for a certificate of another key: sign in again")
)

type dialect int

const (
	sqliteDB dialect = iota
	postgresDB
)

// DB is the state of a CA service: its enrollment tokens (a hash of each
// secret, never the secret), the certificates it issued (with the PEM, so
// that a retried request gets the same certificate back) and the names it
// revoked. It is an embedded SQLite file for one `ca serve`, or a
// PostgreSQL database that several replicas share. One database serves one
// CA.
//
// Every change that must not happen twice is one transaction that first
// locks what it depends on: in SQLite every write transaction takes the
// database's write lock at BEGIN; in PostgreSQL the token's (or the renewed
// certificate's) row is locked with SELECT … FOR UPDATE, and a unique index
// stops two replicas from renewing one certificate twice.
type DB struct {
	db   *sql.DB
	kind dialect
	// writer queues this process's SQLite write transactions in Go, in
	// order, instead of in SQLite's busy handler, which sleeps and polls:
	// at 200 concurrent enrollments its tail latency reached seconds.
	// Other processes (ca token beside ca serve) still wait in SQLite.
	writer sync.Mutex
	// Where names the database in messages: a file, or the PostgreSQL
	// URL with its password masked.
	Where string
}

// IsPostgresURL says whether s names a PostgreSQL server rather than a
// SQLite file.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// RedactURL masks the password of a database address, for messages, in
// every form a user may give one: a URL's user info and its password
// parameters; libpq's key=value form (password=… sslpassword=…, quoted
// or not); and a URL written without "//" (postgres:user:pw@host), which
// net/url reads as opaque and would print whole.
func RedactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Opaque == "" {
		if p, ok := u.User.Password(); ok && p != "" {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		masked := false
		for k := range q {
			if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
				q.Set(k, "xxxxx")
				masked = true
			}
		}
		if masked {
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	s = regexp.MustCompile(keyValuePassword).ReplaceAllString(s, "${1}xxxxx")
	return regexp.MustCompile(userInfoPassword).ReplaceAllString(s, "${1}xxxxx@")
}

// keyValuePassword is a password in libpq's key=value form; the value is
// a quoted string (with \' and \\ escapes) or runs to the next space.
const keyValuePassword = (`(?i)(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)`)

// userInfoPassword is the password of a URL's user info, whether the URL
// parses or not: from the ':' after the user name to the last '@' before
// the host.
const userInfoPassword = (`^((?:[A-Za-z][A-Za-z0-9+.-]*:)?(?://)?[^:@/\s]*:)[^\s/]*@`)

// The database/sql drivers a service database is opened with, linked by
// package drivers.
const (
	sqliteDriver   = "sqlite"
	postgresDriver = "pgx"
)

// DriversLinked says whether this executable links both drivers (package
// drivers): docker-tls-db does, the plugin does not (package dbhelper).
func DriversLinked() bool {
	have := sql.Drivers()
	return slices.Contains(have, sqliteDriver) && slices.Contains(have, postgresDriver)
}

// OpenDB opens the service database where says: a postgres:// URL, or the
// path of a SQLite file (created 0600 in a 0700 directory). The schema is
// created if missing, by one process at a time.
func OpenDB(ctx context.Context, where string) (*DB, error) {
	if !DriversLinked() {
		return nil, ErrNoDrivers
	}
	if IsPostgresURL(where) {
		return openPostgres(ctx, where)
	}
	return openSQLite(ctx, where)
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	if err := fsutil.MkdirPrivate(filepath.Dir(path)); err != nil {
		return nil, err
	}
	// Created 0600 before SQLite opens it: it holds no secret, but who
	// enrolled and which tokens exist is nobody else's business.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, fsutil.PrivateFile)
	if err != nil {
		return nil, err
	}
	f.Close()
	// WAL: readers never wait for the writer; busy_timeout: a second
	// process queues instead of failing; _txlock=immediate: a transaction
	// takes the write lock at BEGIN, so a read-check-update cannot
	// interleave with another.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open(sqliteDriver, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	d := &DB{db: db, kind: sqliteDB, Where: path}
	if err := retryBusy(ctx, func() error { return d.createSchema(ctx) }); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

// retryBusy runs f again while SQLite answers SQLITE_BUSY at once, for up
// to 10 s. The busy timeout covers waiting for another writer, not every
// lock: a connection opening a new database while another process turns
// on its WAL mode is told "database is locked" without waiting (seen with
// 20 processes issuing from one CA at once).
func retryBusy(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for pause := 20 * time.Millisecond; ; pause = min(2*pause, 500*time.Millisecond) {
		err := f()
		if err == nil || sqliteCode(err) != 5 || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
}

func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	where := RedactURL(dsn)
	db, err := sql.Open(postgresDriver, dsn)
	if err != nil {
		return nil, fmt.Errorf("the database %s: %s", where, redactErr(err, dsn))
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(5 * time.Minute)
	d := &DB{db: db, kind: postgresDB, Where: where}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot reach the database %s: %s", where, redactErr(err, dsn))
	}
	if err := d.createSchema(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

// redactErr keeps a password that a driver error might quote out of it.
func redactErr(err error, dsn string) string {
	msg := err.Error()
	if u, perr := url.Parse(dsn); perr == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
		if p := u.Query().Get("password"); p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	// pgx lists each address it tried on a line of its own: one line,
	// each attempt once.
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(parts, l) {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}

// Close releases the database.
func (d *DB) Close() error { return d.db.Close() }

// Ping checks that the database answers, for /healthz.
func (d *DB) Ping(ctx context.Context) error { return d.db.PingContext(ctx) }

// The schema works unchanged in SQLite and PostgreSQL: times are Unix
// nanoseconds in BIGINT, lists are JSON text.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS tokens (
	hash    TEXT PRIMARY KEY,
	id      TEXT NOT NULL,
	profile TEXT NOT NULL,
	cn      TEXT NOT NULL DEFAULT '',
	sans    TEXT NOT NULL DEFAULT '[]',
	days    INTEGER NOT NULL DEFAULT 0,
	created BIGINT NOT NULL,
	expires BIGINT NOT NULL,
	uses    INTEGER NOT NULL,
	used    INTEGER NOT NULL DEFAULT 0,
	revoked INTEGER NOT NULL DEFAULT 0)`,
	`CREATE INDEX IF NOT EXISTS tokens_id ON tokens(id)`,
	`CREATE TABLE IF NOT EXISTS issued (
	serial     TEXT PRIMARY KEY,
	cn         TEXT NOT NULL,
	profile    TEXT NOT NULL,
	sans       TEXT NOT NULL DEFAULT '[]',
	not_after  BIGINT NOT NULL,
	issued_at  BIGINT NOT NULL,
	token_id   TEXT NOT NULL DEFAULT '',
	token_hash TEXT NOT NULL DEFAULT '',
	auth_key   TEXT NOT NULL DEFAULT '',
	renews     TEXT NOT NULL DEFAULT '',
	pubkey     TEXT NOT NULL DEFAULT '',
	cert       TEXT NOT NULL DEFAULT '',
	source     TEXT NOT NULL DEFAULT '',
	revoked_at BIGINT NOT NULL DEFAULT 0,
	reason     TEXT NOT NULL DEFAULT '')`,
	`CREATE INDEX IF NOT EXISTS issued_token ON issued(token_hash, pubkey)`,
	// One renewal per certificate, even from two replicas at once.
	`CREATE UNIQUE INDEX IF NOT EXISTS issued_renews ON issued(renews) WHERE renews <> ''`,
	`CREATE INDEX IF NOT EXISTS issued_cn ON issued(cn)`,
	// One certificate per sign-in (ID token), even from two replicas at once.
	`CREATE UNIQUE INDEX IF NOT EXISTS issued_signin ON issued(token_hash) WHERE token_id = 'oidc' AND token_hash <> ''`,
	`CREATE TABLE IF NOT EXISTS revoked_names (
	cn     TEXT PRIMARY KEY,
	at     BIGINT NOT NULL,
	reason TEXT NOT NULL DEFAULT '')`,
	`CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, at BIGINT NOT NULL)`,
	// The last CRL signed for each CA (by fingerprint), shared by replicas.
	`CREATE TABLE IF NOT EXISTS crl (
	ca          TEXT PRIMARY KEY,
	number      BIGINT NOT NULL,
	this_update BIGINT NOT NULL,
	der         TEXT NOT NULL)`,
	catalogSchema,
}

// columnsAdded are the columns later versions added to the tables above,
// each applied once (recorded in migrations), so that a database an older
// docker-tls made gains them and a new one gets them the same way.
var columnsAdded = []struct{ name, stmt string }{
	// A token's groups, which the certificates it enrolls carry.
	{"column tokens.group_names", `ALTER TABLE tokens ADD COLUMN group_names TEXT NOT NULL DEFAULT '[]'`},
	// A certificate's groups, for the inventory's listing.
	{"column issued.group_names", `ALTER TABLE issued ADD COLUMN group_names TEXT NOT NULL DEFAULT '[]'`},
}

func (d *DB) createSchema(ctx context.Context) error {
	tx, done, err := d.begin(ctx)
	if err != nil {
		return d.wrap(err)
	}
	defer done()
	if d.kind == postgresDB {
		// Replicas starting together would race on CREATE … IF NOT EXISTS
		// (it is not atomic in PostgreSQL's catalog): one at a time.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7256331)`); err != nil {
			return d.wrap(err)
		}
	}
	for _, stmt := range schema {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return d.wrap(err)
		}
	}
	for _, c := range columnsAdded {
		var applied int
		if err := tx.QueryRowContext(ctx, d.q(`SELECT count(*) FROM migrations WHERE name = ?`), c.name).Scan(&applied); err != nil {
			return d.wrap(err)
		}
		if applied > 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, c.stmt); err != nil {
			return d.wrap(fmt.Errorf("%s: %w", c.name, err))
		}
		if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO migrations (name, at) VALUES (?, ?)`), c.name, time.Now().UnixNano()); err != nil {
			return d.wrap(err)
		}
	}
	return d.wrap(tx.Commit())
}

// begin starts a write transaction; done rolls it back if it was not
// committed and lets the next writer in.
func (d *DB) begin(ctx context.Context) (*sql.Tx, func(), error) {
	if d.kind == sqliteDB {
		d.writer.Lock()
	}
	unlock := func() {
		if d.kind == sqliteDB {
			d.writer.Unlock()
		}
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return tx, func() { _ = tx.Rollback(); unlock() }, nil
}

// sqliteCode is the primary result code of a SQLite error (SQLITE_BUSY 5,
// SQLITE_IOERR 10, SQLITE_FULL 13), or -1. The driver's error is matched by
// its method, so that this package does not link the driver (package
// drivers does).
func sqliteCode(err error) int {
	var se interface{ Code() int }
	if !errors.As(err, &se) {
		return -1
	}
	return se.Code() & 0xff
}

func (d *DB) wrap(err error) error {
	if err == nil {
		return nil
	}
	// SQLite says a full disk in its own code (SQLITE_FULL, 13), or as an
	// I/O error (10) when the shared-memory file could not grow: as ENOSPC,
	// so the command layer says it as it says every full disk.
	if c := sqliteCode(err); c == 13 || c == 10 && fsutil.NearlyFull(filepath.Dir(d.Where)) {
		return fmt.Errorf("the database %s: %w (%w)", d.Where, err, syscall.ENOSPC)
	}
	return fmt.Errorf("the database %s: %w", d.Where, err)
}

// q rewrites ? placeholders as $1, $2, … for PostgreSQL.
func (d *DB) q(query string) string {
	if d.kind != postgresDB {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// forUpdate locks the rows a SELECT reads, where the database needs it
// (SQLite's write transactions already hold the whole database).
func (d *DB) forUpdate() string {
	if d.kind == postgresDB {
		return " FOR UPDATE"
	}
	return ""
}

func isUniqueViolation(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return pg.SQLState() == "23505"
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// PublicKeyID identifies a public key: hex SHA-256 of its DER
// SubjectPublicKeyInfo.
func PublicKeyID(spki []byte) string {
	sum := sha256.Sum256(spki)
	return hex.EncodeToString(sum[:])
}

// ---- tokens ----

// NewBatch mints n tokens alike (each with its own secret) in one
// transaction, and returns them as DTLS1-<fingerprint>-<secret> strings
// beside what is stored of each.
func (d *DB) NewBatch(caRaw []byte, o TokenOptions, n int) ([]string, []*Token, error) {
	strs, toks, err := mint(caRaw, o, n)
	if err != nil {
		return nil, nil, err
	}
	tx, done, err := d.begin(context.Background())
	if err != nil {
		return nil, nil, d.wrap(err)
	}
	defer done()
	if err := d.insertTokens(tx, toks); err != nil {
		return nil, nil, d.wrap(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, d.wrap(err)
	}
	return strs, toks, nil
}

// New mints one token.
func (d *DB) New(caRaw []byte, o TokenOptions) (string, *Token, error) {
	strs, toks, err := d.NewBatch(caRaw, o, 1)
	if err != nil {
		return "", nil, err
	}
	return strs[0], toks[0], nil
}

func (d *DB) insertTokens(tx *sql.Tx, toks []*Token) error {
	stmt, err := tx.Prepare(d.q(`INSERT INTO tokens (` + tokenColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`))
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, t := range toks {
		revoked := 0
		if t.Revoked {
			revoked = 1
		}
		if _, err := stmt.Exec(t.Hash, t.ID, string(t.Profile), t.CN, jsonList(t.SANs), t.Days,
			t.Created.UnixNano(), t.Expires.UnixNano(), t.Uses, t.Used, revoked, jsonList(t.Groups)); err != nil {
			return err
		}
	}
	return nil
}

const tokenColumns = `hash, id, profile, cn, sans, days, created, expires, uses, used, revoked, group_names`

// jsonList is a list as the schema keeps it: JSON text, [] for none.
func jsonList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l)
	return string(b)
}

// parseList reads a jsonList; none is nil.
func parseList(s string) []string {
	var l []string
	_ = json.Unmarshal([]byte(s), &l)
	if len(l) == 0 {
		return nil
	}
	return l
}

type scanner interface{ Scan(...any) error }

func scanToken(r scanner) (*Token, error) {
	var (
		t                Token
		sans, groups     string
		created, expires int64
		revoked          int
	)
	if err := r.Scan(&t.Hash, &t.ID, &t.Profile, &t.CN, &sans, &t.Days, &created, &expires, &t.Uses, &t.Used, &revoked, &groups); err != nil {
		return nil, err
	}
	t.Groups = parseList(groups)
	t.SANs = parseList(sans)
	t.Revoked = revoked != 0
	t.Created, t.Expires = time.Unix(0, created).UTC(), time.Unix(0, expires).UTC()
	return &t, nil
}

// Tokens returns every token, oldest first.
func (d *DB) Tokens() ([]*Token, error) {
	rows, err := d.db.Query(`SELECT ` + tokenColumns + ` FROM tokens ORDER BY created, id`)
	if err != nil {
		return nil, d.wrap(err)
	}
	defer rows.Close()
	var out []*Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, d.wrap(err)
		}
		out = append(out, t)
	}
	return out, d.wrap(rows.Err())
}

// NoSuchTokenError is a token id that names no token in the database.
type NoSuchTokenError struct{ ID string }

func (e *NoSuchTokenError) Error() string { return fmt.Sprintf("no token with id %q", e.ID) }

// RevokeToken revokes the one token whose id starts with id.
func (d *DB) RevokeToken(id string) (*Token, error) {
	if id == "" || strings.ContainsAny(id, "%_") {
		return nil, &NoSuchTokenError{ID: id}
	}
	tx, done, err := d.begin(context.Background())
	if err != nil {
		return nil, d.wrap(err)
	}
	defer done()
	rows, err := tx.Query(d.q(`SELECT `+tokenColumns+` FROM tokens WHERE id LIKE ? LIMIT 2`), id+"%")
	if err != nil {
		return nil, d.wrap(err)
	}
	var hits []*Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			rows.Close()
			return nil, d.wrap(err)
		}
		hits = append(hits, t)
	}
	rows.Close()
	switch len(hits) {
	case 0:
		return nil, &NoSuchTokenError{ID: id}
	case 2:
		return nil, fmt.Errorf("token id %q is ambiguous: give more of it", id)
	}
	if _, err := tx.Exec(d.q(`UPDATE tokens SET revoked = 1 WHERE hash = ?`), hits[0].Hash); err != nil {
		return nil, d.wrap(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, d.wrap(err)
	}
	hits[0].Revoked = true
	return hits[0], nil
}

// ---- issuance ----

// Enrollment is one request to spend a token on a certificate.
type Enrollment struct {
	Secret string
	Req    Request
	// PublicKey is PublicKeyID of the CSR's key: a retry with the same
	// token and key is answered with the same certificate.
	PublicKey string
	Source    string
	Now       time.Time
}

// Enroll spends one use of the token and records the certificate sign
// makes, in one transaction: if anything fails before the commit the token
// is not spent and nothing is recorded; once it commits, the same token
// with the same key gets that certificate again (replay is true) for as
// long as the token would have been valid, so a client whose connection
// died after the commit loses nothing by retrying.
func (d *DB) Enroll(ctx context.Context, e Enrollment, sign func(*Token) (*x509.Certificate, error)) (cert *x509.Certificate, rec *Issued, replay bool, err error) {
	tx, done, err := d.begin(ctx)
	if err != nil {
		return nil, nil, false, d.wrap(err)
	}
	defer done()
	hash := hashSecret(e.Secret)
	t, err := scanToken(tx.QueryRowContext(ctx, d.q(`SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`+d.forUpdate()), hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, false, guess{ErrTokenUnknown} // no one issued it
	}
	if err != nil {
		return nil, nil, false, d.wrap(err)
	}
	if !t.Revoked && e.Now.Before(t.Expires) && e.PublicKey != "" {
		if c, prev, err := d.enrolled(ctx, tx, hash, e.PublicKey); c != nil || err != nil {
			return c, prev, c != nil, err
		}
	}
	if err := t.consumable(e.Req, e.Now); err != nil {
		return nil, nil, false, err
	}
	cn := t.CN
	if cn == "" {
		cn = e.Req.CN
	}
	if revoked, err := d.nameRevoked(ctx, tx, cn); err != nil {
		return nil, nil, false, err
	} else if revoked {
		return nil, nil, false, ErrIdentityRevoked
	}
	cert, err = sign(t)
	if err != nil {
		return nil, nil, false, err
	}
	res, err := tx.ExecContext(ctx, d.q(`UPDATE tokens SET used = used + 1 WHERE hash = ? AND used < uses AND revoked = 0`), hash)
	if err != nil {
		return nil, nil, false, d.wrap(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return nil, nil, false, ErrTokenUsed
	}
	rec = newIssued(cert, e.Source, e.Now)
	rec.Token, rec.tokenHash, rec.PublicKey = t.ID, hash, e.PublicKey
	if err := d.insertIssued(ctx, tx, rec); err != nil {
		return nil, nil, false, d.wrap(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, false, d.wrap(err)
	}
	return cert, rec, false, nil
}

// enrolled is the certificate the token (by hash) got for the key before,
// if any and not revoked: what a retry gets again.
func (d *DB) enrolled(ctx context.Context, tx *sql.Tx, hash, pubkey string) (*x509.Certificate, *Issued, error) {
	prev, err := scanIssued(tx.QueryRowContext(ctx, d.q(`SELECT `+issuedColumns+` FROM issued
		WHERE token_hash = ? AND pubkey = ? AND revoked_at = 0 AND cert <> '' LIMIT 1`), hash, pubkey))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, d.wrap(err)
	}
	c, err := pki.ParseCertificate([]byte(prev.PEM))
	if err != nil {
		return nil, nil, d.wrap(err)
	}
	return c, prev, nil
}

// RecordCertificate adds a certificate the CA issued on the laptop (no
// token): source says where it went (a context, a directory, an engine).
func (d *DB) RecordCertificate(ctx context.Context, cert *x509.Certificate, source string, now time.Time) error {
	return d.Record(ctx, newIssued(cert, source, now))
}

// Record adds a certificate issued without a token (cfssl auth key).
func (d *DB) Record(ctx context.Context, rec *Issued) error {
	tx, done, err := d.begin(ctx)
	if err != nil {
		return d.wrap(err)
	}
	defer done()
	if err := d.insertIssued(ctx, tx, rec); err != nil {
		return d.wrap(err)
	}
	return d.wrap(tx.Commit())
}

// SignIn signs (sign) and records a certificate for a signed-in identity,
// in one transaction with the checks: a revoked name gets nothing, however
// it signs in; an ID token gets one certificate: the same token with the
// same key (a retry whose answer was lost) gets it again, with another key
// it is refused (ErrSignInUsed), so a token that leaked after use is
// worth nothing.
func (d *DB) SignIn(ctx context.Context, s SignInRecord, sign func() (*x509.Certificate, error)) (cert *x509.Certificate, rec *Issued, replay bool, err error) {
	tx, done, err := d.begin(ctx)
	if err != nil {
		return nil, nil, false, d.wrap(err)
	}
	defer done()
	hash := hashSecret(s.IDToken)
	prev, err := scanIssued(tx.QueryRowContext(ctx, d.q(`SELECT `+issuedColumns+` FROM issued WHERE token_id = 'oidc' AND token_hash = ? LIMIT 1`+d.forUpdate()), hash))
	switch {
	case err == nil && prev.PublicKey == s.PublicKey && prev.RevokedAt.IsZero() && prev.PEM != "":
		c, err := pki.ParseCertificate([]byte(prev.PEM))
		if err != nil {
			return nil, nil, false, d.wrap(err)
		}
		return c, prev, true, nil
	case err == nil:
		return nil, nil, false, ErrSignInUsed
	case !errors.Is(err, sql.ErrNoRows):
		return nil, nil, false, d.wrap(err)
	}
	if revoked, err := d.nameRevoked(ctx, tx, s.CN); err != nil {
		return nil, nil, false, err
	} else if revoked {
		return nil, nil, false, ErrIdentityRevoked
	}
	if cert, err = sign(); err != nil {
		return nil, nil, false, err
	}
	rec = newIssued(cert, s.Source, s.Now)
	rec.Token, rec.tokenHash, rec.PublicKey = "oidc", hash, s.PublicKey
	// A replica that recorded the same sign-in meanwhile makes this a
	// unique violation: a 503, and the client's retry gets that answer.
	if err := d.insertIssued(ctx, tx, rec); err != nil {
		return nil, nil, false, d.wrap(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, false, d.wrap(err)
	}
	return cert, rec, false, nil
}

// SignInRecord is a sign-in to record: the raw ID token (kept only as a
// hash), the PublicKeyID of the CSR's key, the user, source and time.
type SignInRecord struct {
	IDToken, PublicKey, CN, Source string
	Now                            time.Time
}

// Renewal is one request to renew a client certificate whose holder
// proved, over mutual TLS, that it has the key.
type Renewal struct {
	Old       *x509.Certificate
	PublicKey string // PublicKeyID of the new CSR's key
	Source    string
	Now       time.Time
}

// Renew checks that the presented certificate and its name are not
// revoked and that it was not renewed before, then records what sign
// makes. sign gets the time the old certificate was issued (its NotBefore
// plus pki.Backdate) so that it can apply the renewal window and keep the
// lifetime. A certificate renews
// once: a retry with the same new key gets the same certificate (replay).
func (d *DB) Renew(ctx context.Context, r Renewal, sign func(issuedAt time.Time) (*x509.Certificate, error)) (cert *x509.Certificate, rec *Issued, replay bool, err error) {
	serial := fmt.Sprintf("%x", r.Old.SerialNumber)
	tx, done, err := d.begin(ctx)
	if err != nil {
		return nil, nil, false, d.wrap(err)
	}
	defer done()
	// When it was issued, from the certificate itself (NotBefore is
	// backdated by pki.Backdate), not from the inventory: certificates
	// carry whole seconds, and a client (the agent) computes the renewal
	// window from the same fields, to the same second.
	issuedAt := r.Old.NotBefore.Add(pki.Backdate)
	if issuedAt.After(r.Old.NotAfter) {
		issuedAt = r.Old.NotBefore
	}
	old, err := scanIssued(tx.QueryRowContext(ctx, d.q(`SELECT `+issuedColumns+` FROM issued WHERE serial = ?`+d.forUpdate()), serial))
	switch {
	case err == nil:
		if !old.RevokedAt.IsZero() {
			return nil, nil, false, ErrCertRevoked
		}
	case !errors.Is(err, sql.ErrNoRows):
		return nil, nil, false, d.wrap(err)
	}
	if revoked, err := d.nameRevoked(ctx, tx, r.Old.Subject.CommonName); err != nil {
		return nil, nil, false, err
	} else if revoked {
		return nil, nil, false, ErrIdentityRevoked
	}
	if c, prev, err := d.renewalOf(ctx, tx, serial, r.PublicKey); c != nil || err != nil {
		return c, prev, c != nil, err
	}
	cert, err = sign(issuedAt)
	if err != nil {
		return nil, nil, false, err
	}
	rec = newIssued(cert, r.Source, r.Now)
	rec.Renews, rec.PublicKey = serial, r.PublicKey
	if err := d.insertIssued(ctx, tx, rec); err != nil {
		tx.Rollback()
		if isUniqueViolation(err) {
			// Another replica renewed it in the meantime: its answer is ours
			// if the key is the same.
			c, prev, rerr := d.renewalOf(ctx, d.db, serial, r.PublicKey)
			return c, prev, c != nil, rerr
		}
		return nil, nil, false, d.wrap(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, false, d.wrap(err)
	}
	return cert, rec, false, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// renewalOf returns the recorded renewal of serial if it is for the same
// key, ErrAlreadyRenewed if it is for another, or nothing.
func (d *DB) renewalOf(ctx context.Context, q querier, serial, pubkey string) (*x509.Certificate, *Issued, error) {
	prev, err := scanIssued(q.QueryRowContext(ctx, d.q(`SELECT `+issuedColumns+` FROM issued WHERE renews = ?`), serial))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, d.wrap(err)
	}
	if prev.PublicKey != pubkey || prev.PEM == "" || !prev.RevokedAt.IsZero() {
		return nil, nil, fmt.Errorf("%w (as serial %s)", ErrAlreadyRenewed, prev.Serial)
	}
	c, err := pki.ParseCertificate([]byte(prev.PEM))
	if err != nil {
		return nil, nil, d.wrap(err)
	}
	return c, prev, nil
}

func (d *DB) nameRevoked(ctx context.Context, tx *sql.Tx, cn string) (bool, error) {
	if cn == "" {
		return false, nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, d.q(`SELECT count(*) FROM revoked_names WHERE cn = ?`), cn).Scan(&n); err != nil {
		return false, d.wrap(err)
	}
	return n > 0, nil
}
