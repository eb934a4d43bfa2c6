package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
