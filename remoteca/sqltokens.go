package remoteca

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	// SQLite in pure Go (no cgo): docker-tls builds with CGO_ENABLED=0.
	_ "modernc.org/sqlite"

	"github.com/docker-tls/docker-tls/internal/fsutil"
)

// TokenStore keeps enrollment tokens: a hash of each secret and what it
// allows, never the secret.
type TokenStore interface {
	New(caRaw []byte, o TokenOptions) (string, *Token, error)
	NewBatch(caRaw []byte, o TokenOptions, n int) ([]string, []*Token, error)
	Consume(secret string, req Request, now time.Time) (*Token, error)
	List() ([]*Token, error)
	Revoke(id string) (*Token, error)
}

var (
	_ TokenStore = (*Tokens)(nil)
	_ TokenStore = (*SQLTokens)(nil)
)

// SQLTokens keeps tokens in a SQLite database. A token is looked up by the
// hash of its secret through an index and consumed by one conditional
// UPDATE in a write transaction, so an enrollment costs the same with
// 100 or 100,000 stored tokens, and a token is spent at most its number of
// uses however many `ca serve` processes share the file.
type SQLTokens struct {
	db   *sql.DB
	Path string
}

const tokenSchema = `
CREATE TABLE IF NOT EXISTS tokens (
	hash    TEXT PRIMARY KEY,
	id      TEXT NOT NULL,
	profile TEXT NOT NULL,
	cn      TEXT NOT NULL DEFAULT '',
	sans    TEXT NOT NULL DEFAULT '[]',
	days    INTEGER NOT NULL DEFAULT 0,
	created INTEGER NOT NULL,
	expires INTEGER NOT NULL,
	uses    INTEGER NOT NULL,
	used    INTEGER NOT NULL DEFAULT 0,
	revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tokens_id ON tokens(id);
CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, at INTEGER NOT NULL);
`

// OpenSQLTokens opens (creating, 0600 in a 0700 directory) the token
// database at path. legacyJSON, when it names an existing tokens.json of
// an older docker-tls, is imported once in the same transaction that
// records the import, then renamed to tokens.json.migrated as a backup.
func OpenSQLTokens(path, legacyJSON string) (*SQLTokens, error) {
	if err := fsutil.MkdirPrivate(filepath.Dir(path)); err != nil {
		return nil, err
	}
	// Created 0600 before SQLite opens it: it holds no secret, but what
	// tokens exist is nobody else's business.
	if f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, fsutil.PrivateFile); err == nil {
		f.Close()
	} else {
		return nil, err
	}
	// WAL: readers never wait for the writer; busy_timeout: a second
	// process queues instead of failing; _txlock=immediate: a transaction
	// takes the write lock at BEGIN, so a read-check-update cannot
	// interleave with another.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &SQLTokens{db: db, Path: path}
	if _, err := db.Exec(tokenSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if legacyJSON != "" {
		if err := s.migrate(legacyJSON); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close releases the database.
func (s *SQLTokens) Close() error { return s.db.Close() }

func (s *SQLTokens) migrate(legacy string) error {
	data, err := os.ReadFile(legacy)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var list []*Token
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("migrate %s: %w (fix or remove it)", legacy, err)
	}
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var done int
	if err := tx.QueryRow(`SELECT count(*) FROM migrations WHERE name = 'tokens.json'`).Scan(&done); err != nil {
		return err
	}
	if done == 0 {
		if err := insertTokens(tx, list); err != nil {
			return fmt.Errorf("migrate %s: %w", legacy, err)
		}
		if _, err := tx.Exec(`INSERT INTO migrations (name, at) VALUES ('tokens.json', ?)`, time.Now().Unix()); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	// The import is committed: the old file becomes the backup. A crash
	// before this rename leaves it in place, and the next open skips it.
	return os.Rename(legacy, legacy+".migrated")
}

func insertTokens(tx *sql.Tx, toks []*Token) error {
	stmt, err := tx.Prepare(`INSERT OR IGNORE INTO tokens (hash, id, profile, cn, sans, days, created, expires, uses, used, revoked)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, t := range toks {
		sans, _ := json.Marshal(t.SANs)
		if t.SANs == nil {
			sans = []byte("[]")
		}
		if _, err := stmt.Exec(t.Hash, t.ID, string(t.Profile), t.CN, string(sans), t.Days,
			t.Created.UnixNano(), t.Expires.UnixNano(), t.Uses, t.Used, t.Revoked); err != nil {
			return err
		}
	}
	return nil
}

// New mints one token.
func (s *SQLTokens) New(caRaw []byte, o TokenOptions) (string, *Token, error) {
	toks, ts, err := s.NewBatch(caRaw, o, 1)
	if err != nil {
		return "", nil, err
	}
	return toks[0], ts[0], nil
}

// NewBatch mints n tokens in one transaction.
func (s *SQLTokens) NewBatch(caRaw []byte, o TokenOptions, n int) ([]string, []*Token, error) {
	strs, toks, err := mint(caRaw, o, n)
	if err != nil {
		return nil, nil, err
	}
	tx, err := s.db.Begin()
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback()
	if err := insertTokens(tx, toks); err != nil {
		return nil, nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, err
	}
	return strs, toks, nil
}

const tokenColumns = `hash, id, profile, cn, sans, days, created, expires, uses, used, revoked`

type scanner interface{ Scan(...any) error }

func scanToken(r scanner) (*Token, error) {
	var (
		t                Token
		sans             string
		created, expires int64
	)
	if err := r.Scan(&t.Hash, &t.ID, &t.Profile, &t.CN, &sans, &t.Days, &created, &expires, &t.Uses, &t.Used, &t.Revoked); err != nil {
		return nil, err
	}
	_ = json.Unmarshal([]byte(sans), &t.SANs)
	if len(t.SANs) == 0 {
		t.SANs = nil
	}
	t.Created, t.Expires = time.Unix(0, created).UTC(), time.Unix(0, expires).UTC()
	return &t, nil
}

// Consume spends one use of the token whose secret is given, if it is
// valid now and allows req: one write transaction that reads the row by
// its hash and updates it only while uses remain.
func (s *SQLTokens) Consume(secret string, req Request, now time.Time) (*Token, error) {
	tx, err := s.db.Begin()
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	t, err := scanToken(tx.QueryRow(`SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, hashSecret(secret)))
	if errors.Is(err, sql.ErrNoRows) {
		t, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := t.consumable(req, now); err != nil {
		return nil, err
	}
	res, err := tx.Exec(`UPDATE tokens SET used = used + 1 WHERE hash = ? AND used < uses AND revoked = 0`, t.Hash)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return nil, ErrTokenUsed
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	t.Used++
	return t, nil
}

// List returns every token, oldest first.
func (s *SQLTokens) List() ([]*Token, error) {
	rows, err := s.db.Query(`SELECT ` + tokenColumns + ` FROM tokens ORDER BY created, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Revoke revokes the one token whose id starts with id.
func (s *SQLTokens) Revoke(id string) (*Token, error) {
	if id == "" || strings.ContainsAny(id, "%_") {
		return nil, fmt.Errorf("no token with id %q (docker tls ca tokens ls)", id)
	}
	tx, err := s.db.Begin()
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.Query(`SELECT `+tokenColumns+` FROM tokens WHERE id LIKE ? LIMIT 2`, id+"%")
	if err != nil {
		return nil, err
	}
	var hits []*Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		hits = append(hits, t)
	}
	rows.Close()
	switch len(hits) {
	case 0:
		return nil, fmt.Errorf("no token with id %q (docker tls ca tokens ls)", id)
	case 2:
		return nil, fmt.Errorf("token id %q is ambiguous: give more of it", id)
	}
	if _, err := tx.Exec(`UPDATE tokens SET revoked = 1 WHERE hash = ?`, hits[0].Hash); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	hits[0].Revoked = true
	return hits[0], nil
}
