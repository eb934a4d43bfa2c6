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
