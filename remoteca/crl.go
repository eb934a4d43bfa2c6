package remoteca

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// CRLValidity is how long a CRL is good for (its NextUpdate); a new one is
// signed once half of it has passed, or at once after a revocation.
const CRLValidity = 24 * time.Hour

// CRLSigner signs a CRL: pki.CA.CRL of the CA the list is for.
type CRLSigner func(revoked []pki.Revoked, number *big.Int, now, nextUpdate time.Time) ([]byte, error)

// CRL returns the DER CRL of the CA whose fingerprint (FingerprintHex) is
// caFP: the one kept, while it is fresh (signed after the last revocation,
// and less than half its validity ago), else a new one with the next CRL
// number, signed by sign and kept. Replicas share it: one at a time makes
// it, in a write transaction, so the numbers only grow. It lists every
// revoked certificate that has not expired.
func (d *DB) CRL(ctx context.Context, caFP string, now time.Time, sign CRLSigner) ([]byte, error) {
	tx, done, err := d.begin(ctx)
	if err != nil {
		return nil, d.wrap(err)
	}
	defer done()
	if d.kind == postgresDB {
		// The row may not exist yet, and FOR UPDATE locks no missing row:
		// replicas take turns on the whole table instead.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7256332)`); err != nil {
			return nil, d.wrap(err)
		}
	}
	var (
		number, thisUpdate int64
		der64              string
	)
	err = tx.QueryRowContext(ctx, d.q(`SELECT number, this_update, der FROM crl WHERE ca = ?`), caFP).Scan(&number, &thisUpdate, &der64)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, d.wrap(err)
	}
	var lastRevoked int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(revoked_at), 0) FROM issued`).Scan(&lastRevoked); err != nil {
		return nil, d.wrap(err)
	}
	if number > 0 && thisUpdate >= lastRevoked && now.Sub(time.Unix(0, thisUpdate)) < CRLValidity/2 {
		return base64.StdEncoding.DecodeString(der64)
	}
	revoked, err := d.revokedSerials(ctx, tx, now)
	if err != nil {
		return nil, err
	}
	// The new list is dated no earlier than the last revocation it holds
	// (a clock behind another replica's would otherwise date it before).
	at := now
	if last := time.Unix(0, lastRevoked); last.After(at) {
		at = last
	}
	der, err := sign(revoked, big.NewInt(number+1), at, at.Add(CRLValidity))
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, d.q(`DELETE FROM crl WHERE ca = ?`), caFP); err != nil {
		return nil, d.wrap(err)
	}
	if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO crl (ca, number, this_update, der) VALUES (?, ?, ?, ?)`),
		caFP, number+1, at.UnixNano(), base64.StdEncoding.EncodeToString(der)); err != nil {
		return nil, d.wrap(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, d.wrap(err)
	}
	return der, nil
}

// revokedSerials are the revoked certificates not yet expired at now.
func (d *DB) revokedSerials(ctx context.Context, tx *sql.Tx, now time.Time) ([]pki.Revoked, error) {
	rows, err := tx.QueryContext(ctx, d.q(`SELECT serial, revoked_at FROM issued WHERE revoked_at <> 0 AND not_after > ? ORDER BY serial`), now.UnixNano())
	if err != nil {
		return nil, d.wrap(err)
	}
	defer rows.Close()
	var out []pki.Revoked
	for rows.Next() {
		var (
			serial string
			at     int64
		)
		if err := rows.Scan(&serial, &at); err != nil {
			return nil, d.wrap(err)
		}
		n, ok := new(big.Int).SetString(serial, 16)
		if !ok {
			return nil, fmt.Errorf("the inventory holds a serial that is not hex: %q", serial)
		}
		out = append(out, pki.Revoked{Serial: n, At: time.Unix(0, at)})
	}
	return out, d.wrap(rows.Err())
}
