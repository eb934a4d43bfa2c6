package main

import (
	"testing"

	"github.com/docker-tls/docker-tls/internal/dbhelper"
)

func TestLinksTheDatabaseDrivers(t *testing.T) {
	if !dbhelper.Linked() {
		t.Fatal("docker-tls-db does not link the database drivers the plugin hands it commands for")
	}
}
