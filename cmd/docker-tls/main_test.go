package main

import (
	"database/sql"
	"testing"
)

// The plugin links no database driver: that is what keeps each of its
// execs (two per docker tls command) fast. A driver imported anywhere in
// its dependencies fails this.
func TestLinksNoDatabaseDriver(t *testing.T) {
	if d := sql.Drivers(); len(d) > 0 {
		t.Fatalf("the plugin links database drivers %v: import them only in cmd/docker-tls-db (package remoteca/drivers)", d)
	}
}
