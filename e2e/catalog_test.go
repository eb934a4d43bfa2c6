package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestEngineCatalog: the team's engines in one command. An admin laptop
// sets up three real engines (Debian hosts under systemd-nspawn) with a
// policy that makes group dev a viewer, runs the CA service with sign-in
// at a real OpenID provider and a catalog admin group, and publishes the
// three engines (an identity that is not a catalog admin is refused). A
// team member in group dev signs in with enroll --engines and gets three
// contexts from the catalog, shown as such by ls; docker ps works through
// each, docker run is refused by each engine's policy. A second run with
// another prefix skips the one name that clashes with a context it did
// not make, and leaves that context as it was; a user with no role gets
// one sentence and no context.
func TestEngineCatalog(t *testing.T) {
	t.Parallel() // own hosts; mostly waiting on restarts and sign-in polls
	admin := NewEnv(t)
	c := NewSSHClient(t)
	hosts := StartEngineHosts(t, c, 3)
	admin.MustTLS("ca", "init")
	names := []string{"eng1", "eng2", "eng3"}
	for i, h := range hosts {
		requireOK(t, setupEngine(admin, c, h, "root", "--name", names[i], "--client-name", "admin-1", "--group", "admins",
			"--grant", "group:admins=admin", "--grant", "group:dev=viewer"))
	}
	issuer := startProvider(t, admin)
	url, serve := caServe(t, admin, "default", "--oidc-issuer", issuer, "--oidc-client-id", "docker-tls", "--catalog-admin", "group:admins")
	serve.WaitFor("Catalog: engines published by group:admins")
	fp := regexp.MustCompile(`SHA-256 ([0-9A-F:]{95})`).FindStringSubmatch(serve.Output())
	if fp == nil {
		t.Fatalf("ca serve did not print the CA's fingerprint:\n%s", serve.Output())
	}

	// Not a catalog admin: refused, nothing published.
	endpoint := strings.TrimSpace(admin.MustTLS("ls", "--format", `{{if eq .Name "eng1"}}{{.Host}}{{end}}`).Stdout)
	admin.MustTLS("context", "create", "bob", "--host", endpoint, "--issue", "--client-name", "bob")
	requireFail(t, admin.TLS("engine", "publish", "eng1", "--ca-url", url, "--as", "bob"),
		`"bob" is not a catalog admin of this service (its --catalog-admin: group:admins)`)
	r := admin.MustTLS("engine", "publish", "--all", "--ca-url", url)
	for _, n := range names {
		if !strings.Contains(r.Stdout, n+": published to "+url+" with its policy (2 grants)") {
			t.Errorf("publish of %s:\n%s", n, r)
		}
	}
	if !strings.Contains(serve.Output(), `published engine="eng2"`) {
		t.Errorf("the service did not log the publication:\n%s", serve.Output())
	}
	if ls := admin.MustTLS("ca", "catalog", "ls", "--format", "{{.Name}}|{{.Grants}}|{{.PublishedBy}}").Stdout; !strings.Contains(ls, "eng1|group:admins=admin group:dev=viewer|admin-1") || strings.Count(ls, "|admin-1") != 3 {
		t.Errorf("ca catalog ls:\n%s", ls)
	}

	member := NewEnv(t)
	codeRE := regexp.MustCompile(`enter the code ([A-Z0-9-]+)`)
	enrollEngines := func(user, password string, args ...string) (*Proc, int) {
		t.Helper()
		p := member.Start("docker", append([]string{"tls", "enroll", "--engines", "--ca-url", url, "--ca-fingerprint", "sha256:" + fp[1], "--no-browser"}, args...)...)
		p.WaitFor("Waiting for the sign-in")
		m := codeRE.FindStringSubmatch(p.Output())
		if m == nil {
			t.Fatalf("no code shown:\n%s", p.Output())
		}
		approve(t, issuer, m[1], user, password)
		return p, p.Wait(90 * time.Second)
	}
	start := time.Now()
	p, code := enrollEngines("alice@example.com", "alice-pw", "--prefix", "team-")
	if code != 0 {
		t.Fatalf("enroll --engines: exit %d\n%s", code, p.Output())
	}
	t.Logf("sign-in to three verified contexts: %s\n%s", time.Since(start).Round(time.Millisecond), p.Output())
	out := p.Output()
	for _, n := range names {
		if !regexp.MustCompile(`team-` + n + `\s+` + n + `\s+viewer\s+tcp://\S+\s+created, verified`).MatchString(out) {
			t.Errorf("enroll --engines did not make a verified context for %s:\n%s", n, out)
		}
	}
	if !strings.Contains(out, "Signed in as alice@example.com (groups dev,ops)") || !strings.Contains(out, "3 of 3 engines have a context") {
		t.Errorf("enroll --engines summary:\n%s", out)
	}
	ls := member.MustTLS("ls", "--format", "{{.Name}}|{{.Client}}|{{.Groups}}|{{.Origin}}").Stdout
	for _, n := range names {
		if !strings.Contains(ls, "team-"+n+"|alice@example.com|dev,ops|catalog "+strings.TrimPrefix(url, "https://")) {
			t.Errorf("ls does not show team-%s as from the catalog:\n%s", n, ls)
		}
	}
	for _, n := range names {
		requireOK(t, member.Docker("--context", "team-"+n, "ps"))
		requireFail(t, member.Docker("--context", "team-"+n, "run", "--rm", "--network", "none", "busybox:local", "true"),
			`"alice@example.com"`, "has the role viewer")
	}

	// A context the catalog did not make keeps its name and its engine.
	requireOK(t, member.Docker("context", "create", "other-eng2", "--docker", "host=tcp://192.0.2.1:2376"))
	p, code = enrollEngines("alice@example.com", "alice-pw", "--prefix", "other-")
	if code != 0 {
		t.Fatalf("a second enroll --engines: exit %d\n%s", code, p.Output())
	}
	if !regexp.MustCompile(`other-eng2\s+eng2\s+viewer\s+tcp://\S+\s+skipped \(a context of that name exists that was not made from this catalog`).MatchString(p.Output()) ||
		!strings.Contains(p.Output(), "2 of 3 engines have a context") {
		t.Errorf("the clash was not skipped and named:\n%s", p.Output())
	}
	if h := member.Docker("context", "inspect", "other-eng2", "--format", "{{.Endpoints.docker.Host}}"); strings.TrimSpace(h.Stdout) != "tcp://192.0.2.1:2376" {
		t.Errorf("the clashing context was changed: %s", h)
	}
	requireOK(t, member.Docker("--context", "other-eng3", "ps"))

	// No role anywhere: one sentence, no context.
	before := laptopState(t, member)
	p, code = enrollEngines("bob@example.com", "bob-pw")
	if code == 0 || !strings.Contains(p.Output(), "gives bob@example.com no role on any engine, so no context was made") {
		t.Errorf("a user with no role: exit %d\n%s", code, p.Output())
	}
	if after := laptopState(t, member); after != before {
		t.Errorf("a sign-in with no role changed the laptop:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// The CA's operator takes an engine out; the next run names the
	// context it made for it, and leaves it.
	requireFail(t, admin.TLS("ca", "catalog", "rm", "eng3", "nosuch"), `engine "nosuch" is not in the catalog of CA "default"`, "1 of 2 engines were not in the catalog")
	p, code = enrollEngines("alice@example.com", "alice-pw", "--prefix", "team-")
	if code != 0 || !strings.Contains(p.Output(), "2 of 2 engines have a context") || !strings.Contains(p.Output(), "warning: context team-eng3 came from this catalog, which no longer lists its engine for you: docker tls rm team-eng3 removes it") ||
		!regexp.MustCompile(`team-eng1\s+eng1\s+viewer\s+tcp://\S+\s+updated \(new certificate\), verified`).MatchString(p.Output()) {
		t.Errorf("a run after an engine left the catalog: exit %d\n%s", code, p.Output())
	}
	requireOK(t, member.TLS("inspect", "team-eng3"))
}
