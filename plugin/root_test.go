package plugin

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/internal/dbhelper"
)

// Which commands run in the plugin and which in docker-tls-db: every lean
// command exists (a renamed one would silently move to the helper), the
// root and the groups are lean (their help), and the commands that open a
// CA's database, directly or by issuing into its inventory, are not.
func TestLeanCommands(t *testing.T) {
	c := newTestCLI(t)
	var out, errOut bytes.Buffer
	root := newRootCommand(c.app(&out, &errOut))
	find := func(path string) *cobra.Command {
		t.Helper()
		cmd, rest, err := root.Find(strings.Fields(path))
		if err != nil || len(rest) > 0 || cmd == root {
			t.Fatalf("no command %q (found %q, rest %v, %v)", path, cmd.CommandPath(), rest, err)
		}
		return cmd
	}
	for _, path := range leanCommands() {
		if !dbhelper.IsLean(find(path)) {
			t.Errorf("%q is listed lean but not marked", path)
		}
	}
	for _, path := range []string{"ca", "engine", "keys", "client", "server", "context"} {
		if !dbhelper.IsLean(find(path)) {
			t.Errorf("group %q is not lean: its help would start the helper", path)
		}
	}
	if !dbhelper.IsLean(root) {
		t.Error("the root is not lean")
	}
	for _, path := range []string{"ca serve", "ca token", "ca revoke", "ca crl", "ca rotate", "ca issued ls", "ca tokens ls",
		"client issue", "server issue", "context create", "renew", "engine setup", "engine renew", "engine policy set", "agent"} {
		if dbhelper.IsLean(find(path)) {
			t.Errorf("%q opens a CA's database but is marked lean", path)
		}
	}
}
