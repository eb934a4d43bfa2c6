package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
)

// TestTokensMigrateFromJSON: tokens minted by an older docker-tls
// (tokens.json in the CA's directory) are listed and usable after the
// upgrade; the old file stays as tokens.json.migrated.
func TestTokensMigrateFromJSON(t *testing.T) {
	c := newTestCLI(t)
	c.must("ca", "init")
	dir := filepath.Join(c.dir, "tls", "ca", "default")
	// What an older docker-tls wrote: a JSON list, a hash for each secret.
	tok := remoteca.Token{ID: "0123456789ab", Hash: "0123456789ab" + strings.Repeat("c", 52), Profile: pki.ClientProfile, CN: "legacy",
		Created: time.Now(), Expires: time.Now().Add(time.Hour), Uses: 1}
	data, _ := json.Marshal([]remoteca.Token{tok})
	path := filepath.Join(dir, "tokens.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c.must("ca", "tokens", "ls", "--format", "{{.ID}} {{.CN}}")
	if strings.TrimSpace(c.Stdout) != tok.ID+" legacy" {
		t.Errorf("ca tokens ls after the upgrade: %q", c.Stdout)
	}
	if _, err := os.Stat(path + ".migrated"); err != nil {
		t.Errorf("tokens.json was not kept as a backup: %v", err)
	}
	c.must("ca", "tokens", "ls", "--format", "{{.ID}}")
	if n := len(strings.Fields(c.Stdout)); n != 1 {
		t.Errorf("a second run lists %d tokens", n)
	}
}

// TestServiceStateOutlivesCAChanges: moving a CA's key (which rewrites the
// CA's directory) keeps the tokens and inventory of its service, which live
// beside the CA, not in its directory; a database an older docker-tls kept
// in the CA's directory is moved out once.
func TestServiceStateOutlivesCAChanges(t *testing.T) {
	c := newTestCLI(t)
	c.must("ca", "init")
	c.must("ca", "token", "--cn", "kept")
	c.must("keys", "migrate", "--to", "file")
	c.must("keys", "migrate", "--to", "keyring")
	c.must("ca", "tokens", "ls", "--format", "{{.CN}}")
	if strings.TrimSpace(c.Stdout) != "kept" {
		t.Fatalf("tokens after moving the CA key twice: %q", c.Stdout)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "tls", "services", "default", "service.db")); err != nil {
		t.Fatalf("the service database is not beside the CA: %v", err)
	}

	// An older layout: service.db inside the CA's directory.
	c.must("ca", "init", "older")
	legacy := filepath.Join(c.dir, "tls", "ca", "older", "service.db")
	c.must("ca", "token", "--ca", "older", "--cn", "legacy")
	moved := filepath.Join(c.dir, "tls", "services", "older", "service.db")
	if err := os.Rename(moved, legacy); err != nil {
		t.Fatal(err)
	}
	c.must("ca", "tokens", "ls", "--ca", "older", "--format", "{{.CN}}")
	if strings.TrimSpace(c.Stdout) != "legacy" {
		t.Fatalf("tokens of a database in the CA's directory: %q", c.Stdout)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Fatalf("the old database was not moved: %v", err)
	}
}

// TestTokensListQuotesControlCharacters: a token whose CN holds a newline
// or a right-to-left override (stored before names were checked) is
// listed on one row, its name quoted, not forging a second row.
func TestTokensListQuotesControlCharacters(t *testing.T) {
	c := newTestCLI(t)
	c.must("ca", "init")
	// What an older docker-tls accepted, written as it would have been.
	dir := filepath.Join(c.dir, "tls", "ca", "default")
	var toks []remoteca.Token
	for i, cn := range []string{"evil\nforged-row  client  alice", "alice\u202egpj.exe"} {
		toks = append(toks, remoteca.Token{ID: "0123456789a" + string(rune('0'+i)), Hash: "0123456789a" + string(rune('0'+i)) + strings.Repeat("c", 52),
			Profile: pki.ClientProfile, CN: cn, Created: time.Now(), Expires: time.Now().Add(time.Hour), Uses: 1})
	}
	data, _ := json.Marshal(toks)
	if err := os.WriteFile(filepath.Join(dir, "tokens.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	out := c.must("ca", "tokens", "ls")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 {
		t.Fatalf("want a header and 2 rows, got %d lines:\n%s", len(lines), out)
	}
	if !strings.Contains(out, `"evil\nforged-row  client  alice"`) || !strings.Contains(out, `"alice\u202egpj.exe"`) {
		t.Errorf("the names should be shown quoted:\n%s", out)
	}
	// JSON keeps the value as it is (escaped by JSON itself).
	if js := c.must("ca", "tokens", "ls", "--format", "json"); !strings.Contains(js, `evil\nforged-row`) {
		t.Errorf("json:\n%s", js)
	}
}
