package plugin

import (
	"path/filepath"
	"testing"

	"github.com/docker-tls/docker-tls/engine"
)

// TestEngineTeardownSharedHost: two engines docker tls set up on one
// endpoint (say a file context and an agent-mode one): tearing one down
// would break the other, so it is refused before any connection, naming
// the other and --force.
func TestEngineTeardownSharedHost(t *testing.T) {
	c := newTestCLI(t)
	recs := engine.Records{Dir: filepath.Join(c.dir, "tls", "engines")}
	for _, name := range []string{"build1", "build1-agent"} {
		if err := recs.Put(&engine.Record{Name: name, Dest: "ssh://root@192.0.2.10", Context: name, Host: "tcp://192.0.2.10:2376", Port: 2376, TLSDir: engine.DefaultTLSDir, Status: engine.StatusReady}); err != nil {
			t.Fatal(err)
		}
	}
	c.fails("engine build1-agent is also tcp://192.0.2.10:2376 (build1): tearing it down breaks their contexts too; run again with --force", "engine", "teardown", "build1")
}
