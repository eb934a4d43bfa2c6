package remoteca

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// Issued is one certificate the service signed.
type Issued struct {
	Serial    string    `json:"serial"`
	CN        string    `json:"cn"`
	Profile   string    `json:"profile"`
	SANs      []string  `json:"sans,omitempty"`
	Groups    []string  `json:"groups,omitempty"`
	NotAfter  time.Time `json:"notAfter"`
	Token     string    `json:"token,omitempty"` // token id, never the secret
	AuthKey   string    `json:"authKey,omitempty"`
	Renews    string    `json:"renews,omitempty"` // serial of the certificate this one replaced
	Source    string    `json:"source"`
	IssuedAt  time.Time `json:"issuedAt"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
	Reason    string    `json:"reason,omitempty"`
	// PublicKey is PublicKeyID of the certificate's key.
	PublicKey string `json:"publicKey,omitempty"`
	// RenewedBy is the serial of the certificate that renewed this one.
	RenewedBy string `json:"renewedBy,omitempty"`
	// PEM is the certificate, kept to answer a retried request.
	PEM string `json:"-"`

	tokenHash string
}

// State is what the inventory says of the certificate at now: revoked,
// expired, renewed (a newer one replaced it) or valid.
func (r *Issued) State(now time.Time) string {
	switch {
	case !r.RevokedAt.IsZero():
		return "revoked"
	case !now.Before(r.NotAfter):
		return "expired"
	case r.RenewedBy != "":
		return "renewed"
	}
	return "valid"
}

func newIssued(cert *x509.Certificate, source string, now time.Time) *Issued {
	return &Issued{
		Serial: fmt.Sprintf("%x", cert.SerialNumber), CN: cert.Subject.CommonName, Profile: profileOf(cert),
		SANs: pki.CertSANs(cert).Strings(), NotAfter: cert.NotAfter, Source: source, IssuedAt: now.UTC(),
		PublicKey: PublicKeyID(cert.RawSubjectPublicKeyInfo), PEM: string(pki.EncodeCertificate(cert)),
		Groups: groupsOf(cert),
	}
}

// groupsOf are a client certificate's groups; a server's organization is
// only a name.
func groupsOf(cert *x509.Certificate) []string {
	if profileOf(cert) != string(pki.ClientProfile) {
		return nil
	}
	g := pki.GroupsOf(cert)
	if len(g) == 0 {
		return nil
	}
	return g
}

func profileOf(cert *x509.Certificate) string {
	for _, u := range cert.ExtKeyUsage {
		if u == x509.ExtKeyUsageServerAuth {
			return string(pki.ServerProfile)
		}
	}
	return string(pki.ClientProfile)
}

const issuedColumns = `serial, cn, profile, sans, not_after, issued_at, token_id, token_hash, auth_key, renews, pubkey, cert, source, revoked_at, reason, group_names`

func scanIssued(r scanner) (*Issued, error) {
	var (
		rec                           Issued
		sans, groups                  string
		notAfter, issuedAt, revokedAt int64
	)
	if err := r.Scan(&rec.Serial, &rec.CN, &rec.Profile, &sans, &notAfter, &issuedAt, &rec.Token, &rec.tokenHash,
		&rec.AuthKey, &rec.Renews, &rec.PublicKey, &rec.PEM, &rec.Source, &revokedAt, &rec.Reason, &groups); err != nil {
		return nil, err
	}
	rec.Groups = parseList(groups)
	rec.SANs = parseList(sans)
	rec.NotAfter, rec.IssuedAt = time.Unix(0, notAfter).UTC(), time.Unix(0, issuedAt).UTC()
	if revokedAt != 0 {
		rec.RevokedAt = time.Unix(0, revokedAt).UTC()
	}
	return &rec, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (d *DB) insertIssued(ctx context.Context, tx execer, rec *Issued) error {
	var revokedAt int64
	if !rec.RevokedAt.IsZero() {
		revokedAt = rec.RevokedAt.UnixNano()
	}
	_, err := tx.ExecContext(ctx, d.q(`INSERT INTO issued (`+issuedColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		rec.Serial, rec.CN, rec.Profile, jsonList(rec.SANs), rec.NotAfter.UnixNano(), rec.IssuedAt.UnixNano(), rec.Token, rec.tokenHash,
		rec.AuthKey, rec.Renews, rec.PublicKey, rec.PEM, rec.Source, revokedAt, rec.Reason, jsonList(rec.Groups))
	return err
}

// Issued returns every certificate the service issued, oldest first, each
// with the serial of the certificate that renewed it.
func (d *DB) Issued(ctx context.Context) ([]*Issued, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+issuedColumns+` FROM issued ORDER BY issued_at, serial`)
	if err != nil {
		return nil, d.wrap(err)
	}
	defer rows.Close()
	var out []*Issued
	bySerial := map[string]*Issued{}
	for rows.Next() {
		rec, err := scanIssued(rows)
		if err != nil {
			return nil, d.wrap(err)
		}
		rec.PEM = ""
		out = append(out, rec)
		bySerial[rec.Serial] = rec
	}
	if err := rows.Err(); err != nil {
		return nil, d.wrap(err)
	}
	for _, rec := range out {
		if old := bySerial[rec.Renews]; rec.Renews != "" && old != nil {
			old.RenewedBy = rec.Serial
		}
	}
	return out, nil
}

// Revocation is what `ca revoke` did.
type Revocation struct {
	// Name is set when an identity (CN) was revoked.
	Name string
	// Certificates lists what was revoked now (not before).
	Certificates []*Issued
	// Tokens counts the tokens for the name or the token revoked.
	Tokens int
}

// LastExpiry is when the last of the revoked certificates expires: until
// then an engine that checks no revocation list still accepts one.
func (r *Revocation) LastExpiry() time.Time {
	var last time.Time
	for _, c := range r.Certificates {
		if c.NotAfter.After(last) {
			last = c.NotAfter
		}
	}
	return last
}

// NoSuchSerialError is a serial that names no certificate in the
// database; Malformed: not a serial at all.
type NoSuchSerialError struct {
	Serial    string
	Malformed bool
}

func (e *NoSuchSerialError) Error() string {
	if e.Malformed {
		return fmt.Sprintf("%q is not a serial: give at least 8 hex digits", e.Serial)
	}
	return fmt.Sprintf("no certificate with serial %s was issued by this service", e.Serial)
}

// RevokeSerial revokes one issued certificate by its serial (hex, or a
// unique prefix of at least 8 digits).
func (d *DB) RevokeSerial(ctx context.Context, serial, reason string, now time.Time) (*Revocation, error) {
	serial = strings.ToLower(strings.TrimPrefix(strings.ReplaceAll(serial, ":", ""), "0x"))
	if len(serial) < 8 || strings.Trim(serial, "0123456789abcdef") != "" {
		return nil, &NoSuchSerialError{Serial: serial, Malformed: true}
	}
	return d.revoke(ctx, func(tx *sql.Tx) (*Revocation, error) {
		rows, err := tx.QueryContext(ctx, d.q(`SELECT `+issuedColumns+` FROM issued WHERE serial LIKE ? LIMIT 2`), serial+"%")
		if err != nil {
			return nil, err
		}
		hits, err := collectIssued(rows)
		if err != nil {
			return nil, err
		}
		switch {
		case len(hits) == 0:
			return nil, &NoSuchSerialError{Serial: serial}
		case len(hits) > 1:
			return nil, fmt.Errorf("serial %s is ambiguous: give more of it", serial)
		}
		rev := &Revocation{}
		if hits[0].RevokedAt.IsZero() {
			if _, err := tx.ExecContext(ctx, d.q(`UPDATE issued SET revoked_at = ?, reason = ? WHERE serial = ?`), now.UnixNano(), reason, hits[0].Serial); err != nil {
				return nil, err
			}
			hits[0].RevokedAt, hits[0].Reason = now.UTC(), reason
			rev.Certificates = hits
		}
		return rev, nil
	})
}

// RevokeName revokes an identity: every certificate issued to the CN,
// every token for it, and any later enrollment or renewal under it.
func (d *DB) RevokeName(ctx context.Context, cn, reason string, now time.Time) (*Revocation, error) {
	if cn == "" {
		return nil, errors.New("give the CN to revoke")
	}
	return d.revoke(ctx, func(tx *sql.Tx) (*Revocation, error) {
		rev := &Revocation{Name: cn}
		if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO revoked_names (cn, at, reason) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`), cn, now.UnixNano(), reason); err != nil {
			return nil, err
		}
		rows, err := tx.QueryContext(ctx, d.q(`SELECT `+issuedColumns+` FROM issued WHERE cn = ? AND revoked_at = 0`), cn)
		if err != nil {
			return nil, err
		}
		if rev.Certificates, err = collectIssued(rows); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, d.q(`UPDATE issued SET revoked_at = ?, reason = ? WHERE cn = ? AND revoked_at = 0`), now.UnixNano(), reason, cn); err != nil {
			return nil, err
		}
		// Only tokens that could still enroll: a spent or expired one
		// is not worth reporting as revoked.
		res, err := tx.ExecContext(ctx, d.q(`UPDATE tokens SET revoked = 1 WHERE cn = ? AND revoked = 0 AND used < uses AND expires > ?`), cn, now.UnixNano())
		if err != nil {
			return nil, err
		}
		n, _ := res.RowsAffected()
		rev.Tokens = int(n)
		for _, c := range rev.Certificates {
			c.RevokedAt, c.Reason = now.UTC(), reason
		}
		return rev, nil
	})
}

// RevokeTokenAndIssued revokes a token (by id or unique prefix) and every
// certificate issued with it.
func (d *DB) RevokeTokenAndIssued(ctx context.Context, id, reason string, now time.Time) (*Revocation, error) {
	t, err := d.RevokeToken(id)
	if err != nil {
		return nil, err
	}
	return d.revoke(ctx, func(tx *sql.Tx) (*Revocation, error) {
		rev := &Revocation{Tokens: 1}
		rows, err := tx.QueryContext(ctx, d.q(`SELECT `+issuedColumns+` FROM issued WHERE token_hash = ? AND revoked_at = 0`), t.Hash)
		if err != nil {
			return nil, err
		}
		if rev.Certificates, err = collectIssued(rows); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, d.q(`UPDATE issued SET revoked_at = ?, reason = ? WHERE token_hash = ? AND revoked_at = 0`), now.UnixNano(), reason, t.Hash); err != nil {
			return nil, err
		}
		for _, c := range rev.Certificates {
			c.RevokedAt, c.Reason = now.UTC(), reason
		}
		return rev, nil
	})
}

func (d *DB) revoke(ctx context.Context, f func(*sql.Tx) (*Revocation, error)) (*Revocation, error) {
	tx, done, err := d.begin(ctx)
	if err != nil {
		return nil, d.wrap(err)
	}
	defer done()
	rev, err := f(tx)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, d.wrap(err)
	}
	return rev, nil
}

func collectIssued(rows *sql.Rows) ([]*Issued, error) {
	defer rows.Close()
	var out []*Issued
	for rows.Next() {
		rec, err := scanIssued(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}

// FindIssued returns what an argument of `ca revoke` names: the
// certificates with that exact CN, and whether a serial starts with it.
func (d *DB) FindIssued(ctx context.Context, arg string) (byCN int, bySerial bool, err error) {
	if err := d.db.QueryRowContext(ctx, d.q(`SELECT count(*) FROM issued WHERE cn = ?`), arg).Scan(&byCN); err != nil {
		return 0, false, d.wrap(err)
	}
	var tokens int
	if err := d.db.QueryRowContext(ctx, d.q(`SELECT count(*) FROM tokens WHERE cn = ?`), arg).Scan(&tokens); err != nil {
		return 0, false, d.wrap(err)
	}
	byCN += tokens
	s := strings.ToLower(strings.ReplaceAll(arg, ":", ""))
	if len(s) >= 8 && strings.Trim(s, "0123456789abcdef") == "" {
		var n int
		if err := d.db.QueryRowContext(ctx, d.q(`SELECT count(*) FROM issued WHERE serial LIKE ?`), s+"%").Scan(&n); err != nil {
			return 0, false, d.wrap(err)
		}
		bySerial = n > 0
	}
	return byCN, bySerial, nil
}

// StillOnCA returns the client certificates the service issued from ca
// that are still in use at now: not revoked, not expired and not renewed
// (a CA rotation waits for them to renew to the new CA). A record kept
// without its certificate (imported from an older docker-tls) counts: it
// cannot be shown to come from another CA.
func (d *DB) StillOnCA(ctx context.Context, ca *x509.Certificate, now time.Time) ([]*Issued, error) {
	rows, err := d.db.QueryContext(ctx, d.q(`SELECT `+issuedColumns+` FROM issued i
		WHERE profile = ? AND revoked_at = 0 AND not_after > ?
		AND NOT EXISTS (SELECT 1 FROM issued r WHERE r.renews = i.serial)
		ORDER BY cn, serial`), string(pki.ClientProfile), now.UnixNano())
	if err != nil {
		return nil, d.wrap(err)
	}
	all, err := collectIssued(rows)
	if err != nil {
		return nil, d.wrap(err)
	}
	var out []*Issued
	for _, rec := range all {
		if rec.PEM != "" {
			cert, err := pki.ParseCertificate([]byte(rec.PEM))
			if err != nil || !bytes.Equal(cert.RawIssuer, ca.RawSubject) || cert.CheckSignatureFrom(ca) != nil {
				continue
			}
		}
		rec.PEM = ""
		out = append(out, rec)
	}
	return out, nil
}

// RecordRenewal records cert, issued outside the service, as the renewal
// of old (a CA rotation renewing this machine's own enrolled contexts),
// so that the inventory shows old renewed. Recording it twice is no
// error.
func (d *DB) RecordRenewal(ctx context.Context, old, cert *x509.Certificate, source string, now time.Time) error {
	rec := newIssued(cert, source, now)
	rec.Renews = fmt.Sprintf("%x", old.SerialNumber)
	err := d.Record(ctx, rec)
	if isUniqueViolation(err) {
		return nil
	}
	return err
}

// Names returns every CN the service issued a certificate or a token to,
// sorted, once each.
func (d *DB) Names(ctx context.Context) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT cn FROM issued WHERE cn <> '' UNION SELECT cn FROM tokens WHERE cn <> '' ORDER BY 1`)
	if err != nil {
		return nil, d.wrap(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var cn string
		if err := rows.Scan(&cn); err != nil {
			return nil, d.wrap(err)
		}
		names = append(names, cn)
	}
	return names, d.wrap(rows.Err())
}

// ---- migration of an older docker-tls's files ----

// Migrate imports an older docker-tls's tokens.json and issued.jsonl, each
// once: the import and its record commit in one transaction, then the file
// is renamed to NAME.migrated as a backup. A crash before the rename leaves
// the file, and the next start only renames it.
func (d *DB) Migrate(ctx context.Context, tokensJSON, inventoryJSONL string) error {
	if tokensJSON != "" {
		if err := d.migrateFile(ctx, tokensJSON, "tokens.json", func(tx *sql.Tx, data []byte) error {
			var list []*Token
			if err := json.Unmarshal(data, &list); err != nil {
				return fmt.Errorf("%w (fix or remove it)", err)
			}
			return d.insertTokens(tx, list)
		}); err != nil {
			return err
		}
	}
	if inventoryJSONL != "" {
		return d.migrateFile(ctx, inventoryJSONL, "issued.jsonl", func(tx *sql.Tx, data []byte) error {
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(make([]byte, 64*1024), 1<<20)
			for sc.Scan() {
				var rec Issued
				if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Serial == "" {
					continue // a torn last line of a crashed append
				}
				if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO issued (serial, cn, profile, sans, not_after, issued_at, token_id, auth_key, renews, source)
					VALUES (?, ?, ?, '[]', ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
					rec.Serial, rec.CN, rec.Profile, rec.NotAfter.UnixNano(), rec.IssuedAt.UnixNano(), rec.Token, rec.AuthKey, "", rec.Source); err != nil {
					return err
				}
			}
			return sc.Err()
		})
	}
	return nil
}

func (d *DB) migrateFile(ctx context.Context, path, name string, load func(*sql.Tx, []byte) error) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	tx, done, err := d.begin(ctx)
	if err != nil {
		return d.wrap(err)
	}
	defer done()
	var applied int
	if err := tx.QueryRowContext(ctx, d.q(`SELECT count(*) FROM migrations WHERE name = ?`), name).Scan(&applied); err != nil {
		return d.wrap(err)
	}
	if applied == 0 {
		if err := load(tx, data); err != nil {
			return fmt.Errorf("migrate %s: %w", path, err)
		}
		if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO migrations (name, at) VALUES (?, ?)`), name, time.Now().UnixNano()); err != nil {
			return d.wrap(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return d.wrap(err)
	}
	return os.Rename(path, path+".migrated")
}
