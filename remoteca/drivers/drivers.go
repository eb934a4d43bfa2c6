// Package drivers links the database/sql drivers a CA service's database is
// opened with. Only docker-tls-db imports it (and tests that open a
// database): the plugin leaves them out to start fast (package dbhelper).
package drivers

import (
	// PostgreSQL through database/sql, pure Go: one `ca serve` state shared
	// by replicas.
	_ "github.com/jackc/pgx/v5/stdlib"
	// SQLite in pure Go (no cgo): docker-tls builds with CGO_ENABLED=0.
	_ "modernc.org/sqlite"
)
