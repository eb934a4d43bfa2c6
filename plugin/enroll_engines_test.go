package plugin

import (
	"bytes"
	"strings"
	"testing"

	"github.com/docker-tls/docker-tls/catalog"
	"github.com/docker-tls/docker-tls/policy"
)

// TestEnrollEnginesOutput: enroll --engines' refusals before any network
// call, and its table: each engine's context, role and endpoint, what was
// done, and what verify said.
func TestEnrollEnginesOutput(t *testing.T) {
	c := newTestCLI(t)
	base := []string{"enroll", "--engines", "--ca-url", "https://ca.example.com:2377", "--ca-fingerprint", "sha256:" + strings.Repeat("ab", 32)}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"build-1"}, "--engines names each context after its engine: give no NAME"},
		{[]string{"--force"}, "--force does not go with --engines"},
		{[]string{"--agent"}, "--agent does not go with --engines"},
		{[]string{"--description", "x"}, "--description does not go with --engines"},
		{[]string{"--prefix", "bad prefix"}, "--prefix"},
	} {
		c.fails(tt.want, append(append([]string{}, base...), tt.args...)...)
	}

	var out bytes.Buffer
	results := []catalog.Result{
		{Context: "team-build-1", Engine: "build-1", Role: policy.Operator, Host: "tcp://10.0.0.1:2376", Outcome: catalog.Created},
		{Context: "team-build-2", Engine: "build-2", Role: policy.Viewer, Host: "tcp://10.0.0.2:2376", Outcome: catalog.Updated, Note: "endpoint changed"},
		{Context: "team-build-3", Engine: "build-3", Role: policy.Admin, Host: "tcp://10.0.0.3:2376", Outcome: catalog.Skipped, Note: "a context of that name did not come from this catalog"},
	}
	checks := map[string]string{"team-build-1": "verified", "team-build-2": "verify failed (api: connection refused)"}
	if err := printSynced(&out, results, checks); err != nil {
		t.Fatal(err)
	}
	c.golden("enroll-engines", out.String())
}
