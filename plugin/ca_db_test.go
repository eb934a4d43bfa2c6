package plugin

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/remoteca"
)

// TestDBPasswordNeverShown: whatever form a --db address takes (a URL,
// libpq's key=value form, a URL without "//") and however it is given
// (the flag itself, file:, env:, $DOCKER_TLS_CA_DB), a refusal never
// shows its password, and changes nothing.
func TestDBPasswordNeverShown(t *testing.T) {
	c := newTestCLI(t)
	c.must("ca", "init")
	for _, addr := range []string{
		"host=127.0.0.1 port=1 user=ca password=s3cret dbname=ca",
		"host=127.0.0.1 password='s3cret with spaces'",
		"postgres:ca:s3cret@127.0.0.1:1/ca",
		"postgresql:ca:s3cret@127.0.0.1",
		"postgres://ca:s3cret@127.0.0.1:1/ca?sslmode=disable&connect_timeout=2",
		"postgres://127.0.0.1:1/ca?password=s3cret&sslmode=disable&connect_timeout=2",
		"postgres://ca:s3%zzcret@127.0.0.1:1/ca",
	} {
		file := filepath.Join(t.TempDir(), "db")
		if err := os.WriteFile(file, []byte(addr+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, how := range []struct {
			name string
			args []string
			env  string
		}{
			{"flag", []string{"--db", addr}, ""},
			{"file", []string{"--db", "file:" + file}, ""},
			{"env", []string{"--db", "env:TEST_DOCKER_TLS_DB"}, addr},
			{"DOCKER_TLS_CA_DB", nil, addr},
		} {
			t.Run(how.name+" "+addr, func(t *testing.T) {
				c.t = t
				t.Setenv("TEST_DOCKER_TLS_DB", "")
				t.Setenv(caDBEnv, "")
				if how.name == "env" {
					t.Setenv("TEST_DOCKER_TLS_DB", how.env)
				}
				if how.name == "DOCKER_TLS_CA_DB" {
					t.Setenv(caDBEnv, how.env)
				}
				err := c.run(append([]string{"ca", "tokens", "ls"}, how.args...)...)
				if err == nil {
					t.Fatal("an unusable database was accepted")
				}
				if all := err.Error() + c.Stdout + c.Stderr; strings.Contains(all, "s3") {
					t.Fatalf("the password shows: %v\nstdout: %s\nstderr: %s", err, c.Stdout, c.Stderr)
				}
			})
		}
	}
}

// TestCACatalog: ca catalog ls shows what engine publish put in a CA's
// catalog (table, JSON, names only), and ca catalog rm takes engines out on
// the CA's own host, naming those that were not there.
func TestCACatalog(t *testing.T) {
	c := newTestCLI(t)
	c.must("ca", "init", "team")
	ctx := context.Background()
	db, err := remoteca.Location{Dir: filepath.Join(c.dir, "tls", "services")}.Open(ctx, "team", filepath.Join(c.dir, "tls", "ca", "team"))
	if err != nil {
		t.Fatal(err)
	}
	published := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	grants := mustPolicy(t, "group:ops=operator", "*=viewer")
	for _, e := range []remoteca.CatalogEngine{
		{Name: "build-1", Host: "tcp://10.0.0.1:2376", CA: "PEM", Policy: &grants, PublishedBy: "admin-1", Published: published},
		{Name: "build-2", Host: "tcp://10.0.0.2:2376", CA: "PEM", PublishedBy: "admin-1", Published: published},
	} {
		if _, err := db.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	out := c.must("ca", "catalog", "ls", "--ca", "team")
	for _, want := range []string{"ENGINE", "GRANTS", "build-1", "tcp://10.0.0.1:2376", "group:ops=operator *=viewer", "build-2", "no policy: any certificate is admin", "admin-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("ca catalog ls lacks %q:\n%s", want, out)
		}
	}
	if got := c.must("ca", "catalog", "ls", "--ca", "team", "--quiet"); got != "build-1\nbuild-2\n" {
		t.Errorf("ca catalog ls --quiet: %q", got)
	}
	var rows []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(c.must("ca", "catalog", "ls", "--ca", "team", "--format", "json")), "\n") {
		var r map[string]string
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("ca catalog ls --format json: %v: %q", err, line)
		}
		rows = append(rows, r)
	}
	if len(rows) != 2 || rows[0]["Name"] != "build-1" || rows[0]["Grants"] != "group:ops=operator *=viewer" || rows[1]["Host"] != "tcp://10.0.0.2:2376" {
		t.Errorf("ca catalog ls --format json: %v", rows)
	}

	// A name not there is named, and the others are still removed.
	if err := c.run("ca", "catalog", "rm", "nosuch", "build-2", "--ca", "team"); err == nil || err.Error() != "1 of 2 engines were not in the catalog: docker tls ca catalog ls --ca team lists it" {
		t.Errorf("ca catalog rm nosuch build-2: %v", err)
	}
	if !strings.Contains(c.Stderr, `engine "nosuch" is not in the catalog of CA "team"`) || !strings.Contains(c.Stdout, "build-2: removed from the catalog") {
		t.Errorf("ca catalog rm said:\nstdout: %s\nstderr: %s", c.Stdout, c.Stderr)
	}
	if got := c.must("ca", "catalog", "ls", "--ca", "team", "--quiet"); got != "build-1\n" {
		t.Errorf("after rm: %q", got)
	}
	c.must("ca", "catalog", "rm", "build-1", "--ca", "team")
	if got := c.must("ca", "catalog", "ls", "--ca", "team", "--quiet"); got != "" {
		t.Errorf("after removing all: %q", got)
	}
}
