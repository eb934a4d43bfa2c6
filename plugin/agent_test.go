package plugin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/agent"
)

// TestAgentStatusRenewals: agent status shows each automatic renewal; an
// expired certificate says in its one line what renews it, a sign-in's
// that a new sign-in is needed.
func TestAgentStatusRenewals(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.Local)
	st := &agent.Status{PID: 42, Started: now.Add(-time.Hour), Renewals: []agent.RenewalStatus{
		{Name: "valid", Due: now.Add(time.Hour), NotAfter: now.Add(3 * time.Hour)},
		{Name: "failing", Due: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), Failures: 2, LastError: "the CA service did not answer", NextTry: now.Add(time.Minute)},
		{Name: "signed-in", Due: now.Add(-3 * time.Hour), NotAfter: now.Add(-time.Hour), SignIn: true},
		{Name: "enrolled", Due: now.Add(-3 * time.Hour), NotAfter: now.Add(-time.Hour)},
	}}
	var out bytes.Buffer
	if err := printAgentStatus(&out, st, "", now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"Agent running, pid 42",
		"Automatic renewals",
		"valid                expires " + now.Add(3*time.Hour).Format(time.RFC3339) + ", renews from " + now.Add(time.Hour).Format(time.RFC3339),
		"failing              expires " + now.Add(time.Hour).Format(time.RFC3339) + ", renews from " + now.Add(-time.Hour).Format(time.RFC3339) + "; FAILING (2 attempt(s), next " + now.Add(time.Minute).Format(time.RFC3339) + "): the CA service did not answer",
		"signed-in            EXPIRED " + now.Add(-time.Hour).Format(time.RFC3339) + ": a new sign-in is needed: docker tls renew signed-in",
		"enrolled             EXPIRED " + now.Add(-time.Hour).Format(time.RFC3339) + ": the agent renews only valid certificates: docker tls renew enrolled (a CA service run with --renew-after-expiry renews it for a while after its end), or enroll again with a new token",
	}
	if len(lines) != len(want) {
		t.Fatalf("agent status:\n%s", out.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %q, want %q", i+1, lines[i], w)
		}
	}
	out.Reset()
	if err := printAgentStatus(&out, st, "{{range .Renewals}}{{.Name}}={{.SignIn}} {{end}}", now); err != nil || strings.TrimSpace(out.String()) != "valid=false failing=false signed-in=true enrolled=false" {
		t.Errorf("--format over .SignIn: %q %v", out.String(), err)
	}
}

// TestAgentRenewRecordsAdvice: a renewal the agent makes fails where no
// command prints it, so the record that agent status, ls and verify show
// carries the advice a command's error would.
func TestAgentRenewRecordsAdvice(t *testing.T) {
	c := newTestCLI(t)
	c.must("ca", "init")
	c.must("context", "create", "brief", "--host", "tcp://brief.example.com:2376", "--issue")
	meta := filepath.Join(c.dir, "contexts", "meta", fmt.Sprintf("%x", sha256.Sum256([]byte("brief"))), "meta.json")
	good, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(meta, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	a := c.app(&out, &errOut)
	const advice = "docker tls rm --force brief removes it"
	if _, err := a.agentRenew(context.Background(), "brief"); err == nil || !strings.Contains(err.Error(), advice) {
		t.Fatalf("agentRenew of a damaged context: %v, want %q", err, advice)
	}
	if rec, err := a.renewFailures().Get("brief"); err != nil || !strings.Contains(rec.Error, advice) {
		t.Fatalf("recorded failure: %+v %v, want %q", rec, err, advice)
	}
	if err := os.WriteFile(meta, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := a.agentRenew(context.Background(), "brief"); err != nil {
		t.Fatalf("agentRenew of the mended context: %v", err)
	}
	if rec, err := a.renewFailures().Get("brief"); err == nil {
		t.Errorf("a renewal that succeeded left its failure record: %+v", rec)
	}
}
