package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/internal/pkitest"
	"github.com/docker-tls/docker-tls/pki"
)

// listingState makes what the listing commands show: two CAs (one in the
// file store, encrypted), a context per key store, one of them locked.
func listingState(t *testing.T) *testCLI {
	c := newTestCLI(t)
	pass := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pass, []byte("Golden-Passphrase-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.must("ca", "init")
	c.must("ca", "init", "team", "--keystore", "file", "--passphrase-file", pass)
	c.must("context", "create", "prod", "--host", "tcp://prod.example.com:2376", "--issue", "--client-name", "alice", "--group", "ops", "--group", "dev", "--description", "Production")
	c.must("context", "create", "lab", "--host", "tcp://10.0.0.7:2376", "--issue", "--ca", "team", "--client-name", "bob", "--keystore", "file", "--passphrase-file", pass)
	c.must("lock", "lab")
	return c
}

// TestGoldenListings: what ls, ca ls, keys ls, inspect, env and verify
// --offline print, table and --format, against golden files.
func TestGoldenListings(t *testing.T) {
	c := listingState(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"ls", []string{"ls"}},
		{"ls-json", []string{"ls", "--format", "json"}},
		{"ls-quiet", []string{"ls", "-q"}},
		{"ls-template", []string{"ls", "--format", "{{.Name}} {{.CA}} {{.KeyStore}} {{.Locked}}"}},
		{"ca-ls", []string{"ca", "ls"}},
		{"ca-ls-json", []string{"ca", "ls", "--format", "json"}},
		{"keys-ls", []string{"keys", "ls"}},
		{"keys-ls-json", []string{"keys", "ls", "--format", "json"}},
		{"inspect", []string{"inspect", "prod"}},
		{"env", []string{"env", "prod"}},
		{"env-fish", []string{"env", "prod", "--shell", "fish"}},
		{"env-powershell", []string{"env", "prod", "--shell", "powershell"}},
		{"verify-offline", []string{"verify", "prod", "--offline"}},
		{"verify-offline-json", []string{"verify", "prod", "--offline", "--format", "json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.golden(tc.name, c.must(tc.args...))
		})
	}
}

// TestCommandsInProcess drives the commands the listings do not: issuing
// to files, export, daemon-config, import, renew, rm, lock and unlock,
// keys migrate and prune, tokens. Each result is checked by what a user
// would look at next (files, ls, verify), not only by the exit code.
func TestCommandsInProcess(t *testing.T) {
	c := listingState(t)
	pass := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pass, []byte("Golden-Passphrase-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()

	// Server and client certificates to files, then daemon-config for them.
	srv := filepath.Join(out, "engine")
	c.must("server", "issue", "engine.example.com", "192.0.2.10", "--out", srv)
	for _, f := range []string{"ca.pem", "server-cert.pem", "server-key.pem"} {
		fi, err := os.Stat(filepath.Join(srv, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "server-key.pem" && fi.Mode().Perm() != 0o600 {
			t.Errorf("server-key.pem is %v", fi.Mode().Perm())
		}
	}
	c.fails("already exist", "server", "issue", "engine.example.com", "--out", srv)
	c.golden("daemon-config", c.must("daemon-config", "--dir", srv, "--install-dir", "/etc/docker/tls"))
	c.golden("daemon-config-systemd", c.must("daemon-config", "--dir", srv, "--install-dir", "/etc/docker/tls", "--format", "systemd", "--listen", "tcp://0.0.0.0:2376"))
	c.must("server", "renew", srv)
	if !strings.Contains(c.Stdout+c.Stderr, "restart") {
		t.Errorf("server renew does not say dockerd needs a restart:\n%s%s", c.Stdout, c.Stderr)
	}
	cli := filepath.Join(out, "carol")
	c.must("client", "issue", "carol", "--out", cli, "--days", "7")
	c.must("inspect", filepath.Join(cli, "cert.pem"))
	if !strings.Contains(c.Stdout, "CN=carol") || !strings.Contains(c.Stdout, "clientAuth") {
		t.Errorf("inspect of the issued client certificate:\n%s", c.Stdout)
	}

	// Import the client files as a context, and export it back.
	c.must("import", "carol", "--host", "tcp://192.0.2.10:2376", "--dir", cli)
	c.must("verify", "carol", "--offline")
	dir := filepath.Join(out, "carol-export")
	c.must("export", "carol", "--format", "dir", "--out", dir)
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		a, _ := os.ReadFile(filepath.Join(cli, f))
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || string(a) != string(b) {
			t.Errorf("export dir %s differs from the imported file (%v)", f, err)
		}
	}
	c.golden("export-curl", c.must("export", "carol", "--format", "curl"))
	c.fails("use env, curl, p12 or dir", "export", "carol", "--format", "pem")
	c.fails("--group goes with --issue", "context", "create", "g1", "--host", "tcp://g:2376", "--cert", "x.pem", "--key", "y.pem", "--group", "ops")
	c.fails("the CA service decides the groups", "context", "create", "g2", "--host", "tcp://g:2376", "--issue", "--ca-url", "https://127.0.0.1:1", "--token", "env:NONE", "--group", "ops")
	c.fails(`the group "ops" is given twice`, "client", "issue", "g3", "--out", t.TempDir()+"/g3", "--group", "ops", "--group", "ops")
	c.fails("control character", "context", "create", "g4", "--host", "tcp://g:2376", "--issue", "--group", "ops\nadmin")
	if out := c.must("ls", "-q"); strings.Contains(out, "g1") || strings.Contains(out, "g2") || strings.Contains(out, "g4") {
		t.Errorf("a refused --group left a context:\n%s", out)
	}

	// Renew, rekey, lock, unlock, rm.
	before := c.must("ls", "--format", `{{if eq .Name "prod"}}{{.KeyID}} {{.NotAfter}}{{end}}`)
	c.must("renew", "prod", "--rekey")
	after := c.must("ls", "--format", `{{if eq .Name "prod"}}{{.KeyID}} {{.NotAfter}}{{end}}`)
	if before == after {
		t.Errorf("renew --rekey changed neither key nor certificate: %s", after)
	}
	if groups := c.must("ls", "--format", `{{if eq .Name "prod"}}{{.Groups}}{{end}}`); strings.TrimSpace(groups) != "dev,ops" {
		t.Errorf("after renew, prod's groups are %q, want dev,ops", groups)
	}
	if groups := c.must("inspect", "prod", "--format", "{{json .Groups}}"); !strings.Contains(groups, `["dev","ops"]`) {
		t.Errorf("after renew, the certificate's groups are %q, want ops and dev", groups)
	}
	c.must("renew", "--all", "--within", "400d", "--dry-run")
	if !strings.Contains(c.Stdout, "prod") {
		t.Errorf("renew --all --dry-run does not name prod:\n%s", c.Stdout)
	}
	// Both are idempotent: a second run says so and succeeds, so they can sit in scripts.
	if out := c.must("unlock", "prod"); !strings.Contains(out, "not locked") {
		t.Errorf("unlock of an unlocked context: %q", out)
	}
	c.must("lock", "prod")
	if out := c.must("lock", "prod"); !strings.Contains(out, "already locked") {
		t.Errorf("lock of a locked context: %q", out)
	}
	c.must("unlock", "prod")
	c.must("verify", "prod", "--offline")
	c.must("rm", "--force", "carol")
	c.fails(`context "carol": no such context`, "rm", "--force", "carol")

	// Keys move between stores and back; nothing is left to prune.
	c.must("keys", "migrate", "--to", "file", "--passphrase-file", pass)
	if strings.Contains(c.must("keys", "ls", "--format", "{{.Store}}"), "keyring") {
		t.Errorf("a key is still in the keyring after migrate --to file:\n%s", c.Stdout)
	}
	if c.keyring.Len() != 0 {
		t.Errorf("%d keyring entries after migrate --to file", c.keyring.Len())
	}
	c.must("keys", "migrate", "--to", "keyring", "--passphrase-file", pass)
	c.must("keys", "prune", "--dry-run")
	if strings.TrimSpace(c.Stdout) != "Nothing to prune" {
		t.Errorf("keys prune --dry-run:\n%s", c.Stdout)
	}
	c.must("client", "issue", "dave", "--out", filepath.Join(out, "dave"), "--ca", "team", "--passphrase-file", pass)

	// Tokens: minted, listed without their secret.
	tok := strings.TrimSpace(c.must("ca", "token", "--cn", "erin", "--ttl", "10m"))
	if !strings.HasPrefix(tok, "DTLS1-") {
		t.Fatalf("ca token printed %q", tok)
	}
	// --count mints many in one call, one per line or as JSON, each its own.
	many := strings.Fields(c.must("ca", "token", "--count", "5", "--ttl", "10m", "--cn", "fleet"))
	if len(many) != 5 {
		t.Fatalf("ca token --count 5 printed %d tokens", len(many))
	}
	var minted []struct {
		Token, ID string
		Expires   time.Time
	}
	if err := json.Unmarshal([]byte(c.must("ca", "token", "--count", "3", "--format", "json", "--cn", "fleet")), &minted); err != nil || len(minted) != 3 {
		t.Fatalf("ca token --count 3 --format json: %v, %d\n%s", err, len(minted), c.Stdout)
	}
	seen := map[string]bool{tok: true}
	for _, m := range append(many, minted[0].Token, minted[1].Token, minted[2].Token) {
		if seen[m] || !strings.HasPrefix(m, "DTLS1-") {
			t.Fatalf("token %q repeated or malformed", m)
		}
		seen[m] = true
	}
	c.must("ca", "tokens", "ls", "--format", "{{.ID}}")
	if n := len(strings.Fields(c.Stdout)); n != 9 {
		t.Errorf("ca tokens ls lists %d tokens, want 9", n)
	}
	c.must("ca", "tokens", "ls")
	for m := range seen {
		// DTLS1-<fingerprint>-<secret>; the secret is base64url, which
		// may itself hold '-': split at the first two only.
		if secret := strings.SplitN(m, "-", 3)[2]; len(secret) < 40 || strings.Contains(c.Stdout, secret) {
			t.Fatal("ca tokens ls printed a token's secret")
		}
	}
	c.must("ca", "issued", "ls")
	c.must("ca", "inspect", "team")
	if !strings.Contains(c.Stdout, "CN=docker-tls CA team") {
		t.Errorf("ca inspect team:\n%s", c.Stdout)
	}
}

// TestBadInputInProcess: each bad input is one sentence, a non-zero exit,
// and no change to DOCKER_CONFIG or the keyring.
func TestBadInputInProcess(t *testing.T) {
	c := listingState(t)
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"already exists", []string{"ca", "init"}},
		{"already exists", []string{"context", "create", "prod", "--host", "tcp://h:2376", "--issue"}},
		{"give a number of days from 1 to 36500", []string{"context", "create", "xx", "--host", "tcp://h:2376", "--issue", "--days", "-1"}},
		{"give a number of days from 1 to 36500", []string{"renew", "prod", "--days", "40000"}},
		{"give a span like 30d", []string{"renew", "--all", "--within", "soon"}},
		{"longer than 292 years", []string{"renew", "--all", "--within", "106752d"}},
		{"use keyring or file", []string{"keys", "migrate", "--to", "vault"}},
		{"give a duration from 0 (off) to 2160h (90 days)", []string{"ca", "serve", "--renew-after-expiry", "2400h"}},
		{"is reached over https (http only on this machine's loopback)", []string{"ca", "serve", "--oidc-issuer", "http://id.example.com", "--oidc-client-id", "c"}},
		{"--oidc-issuer needs --oidc-client-id", []string{"ca", "serve", "--oidc-issuer", "https://id.example.com"}},
		{"sign-ins are off; give --oidc-issuer too", []string{"ca", "serve", "--max-lifetime", "oidc=8h"}},
		{"--ca-fingerprint alone to sign in with the team's identity provider", []string{"enroll", "team", "--ca-url", "https://ca.example.com:2377", "--host", "tcp://h:2376"}},
		{"a sign-in gets the client certificate the CA service gives sign-ins", []string{"enroll", "team", "--ca-url", "https://ca.example.com:2377", "--ca-fingerprint", "sha256:" + strings.Repeat("ab", 32), "--host", "tcp://h:2376", "--lifetime", "1h"}},
		{"use keyring or file", []string{"ca", "init", "other", "--keystore", "vault"}},
		{`context "nosuch": no such context`, []string{"verify", "nosuch", "--offline"}},
		{"give a plain name", []string{"client", "issue", "a\nb", "--out", t.TempDir()}},
		{"shell", []string{"env", "prod", "--shell", "tcsh"}},
		{"is not an ssh destination", []string{"engine", "setup", "tcp://host:2376"}},
		{"is not an ssh destination", []string{"engine", "setup", "--", "-oProxyCommand=touch /tmp/x"}},
		{"plain-text password is not supported", []string{"engine", "setup", "ssh://u:pw@host"}},
		{"--port 70000 is not a TCP port", []string{"engine", "setup", "root@host", "--port", "70000"}},
		{`--tls-dir "tls" is not an absolute path`, []string{"engine", "setup", "root@host", "--tls-dir", "tls"}},
		{`--tls-dir "/etc/my tls" holds ' '`, []string{"engine", "setup", "root@host", "--tls-dir", "/etc/my tls"}},
		{`--tls-dir "/etc/docker/tls\nExecStartPre=/bin/sh" holds '\n'`, []string{"engine", "setup", "root@host", "--tls-dir", "/etc/docker/tls\nExecStartPre=/bin/sh"}},
		{`--tls-dir "/etc/docker/../../tmp/x" holds '..'`, []string{"engine", "setup", "root@host", "--tls-dir", "/etc/docker/../../tmp/x"}},
		{`--tls-dir "/" is a system directory`, []string{"engine", "setup", "root@host", "--tls-dir", "/"}},
		{`--tls-dir "/tmp/$(reboot)" holds '$'`, []string{"engine", "setup", "root@host", "--tls-dir", "/tmp/$(reboot)"}},
		{`"../ca/svc/ca" is not an engine name`, []string{"engine", "teardown", "../ca/svc/ca"}},
		{"--ca-fingerprint sha256:" + strings.Repeat("BB:", 31) + "BB is not the CA this token is for (sha256:aaaaaaaaaaaaaaaa…)",
			[]string{"enroll", "lap", "--ca-url", "https://127.0.0.1:1", "--host", "tcp://h:2376", "--token", "DTLS1-" + strings.Repeat("a", 64) + "-" + strings.Repeat("s", 43), "--ca-fingerprint", "sha256:" + strings.Repeat("BB:", 31) + "BB"}},
		{`--ca-fingerprint: fingerprint "zz" is not a SHA-256`,
			[]string{"enroll", "lap", "--ca-url", "https://127.0.0.1:1", "--host", "tcp://h:2376", "--token", "DTLS1-" + strings.Repeat("a", 64) + "-" + strings.Repeat("s", 43), "--ca-fingerprint", "zz"}},
		{`"../x" is not an engine name`, []string{"engine", "renew", "../x"}},
		{"--wait 0s: give a duration from 1s to 1h", []string{"engine", "setup", "root@host", "--wait", "0s"}},
		{`no engine "nosuch": docker tls engine ls lists them`, []string{"engine", "teardown", "nosuch"}},
		{`no engine "nosuch"`, []string{"engine", "renew", "nosuch"}},
		{"name the engines to renew, or give --all", []string{"engine", "renew"}},
		{"--parallel 0: give 1 to 64", []string{"engine", "renew", "--all", "--parallel", "0"}},
		{"--parallel 65: give 1 to 64", []string{"engine", "ls", "--check", "--parallel", "65"}},
		{"--count 0: give 1 to 10000", []string{"ca", "token", "--count", "0"}},
		{"--idle-lock -5m0s: give a positive span", []string{"agent", "install", "--idle-lock", "-5m"}},
		{"is not a file: give an ssh_config file", []string{"engine", "setup", "root@host", "--ssh-config", t.TempDir()}},
		{"no such file or directory: give an ssh_config file", []string{"engine", "setup", "root@host", "--ssh-config", "no/such/config"}},
		{"its user holds '\\x00'", []string{"engine", "setup", "ssh://a%00b@host"}},
		{"--keyring-timeout 0s: give a span from 100ms to 10m", []string{"agent", "install", "--keyring-timeout", "0s"}},
		{"--cn: the common name \"a\\nb\" contains a control character", []string{"ca", "token", "--cn", "a\nb"}},
		{"--cn: the common name is 5000 characters long", []string{"ca", "token", "--cn", strings.Repeat("x", 5000)}},
		{`--cn " " has spaces at its start or end`, []string{"ca", "token", "--cn", " "}},
		{"contains a bidirectional control (U+202E)", []string{"ca", "token", "--cn", "alice\u202egpj.exe"}},
		{"--cn: the common name \"x\\ny\" contains a control character", []string{"ca", "revoke", "--cn", "x\ny"}},
		{"no certificate with serial 0123abcdef was issued by this service (docker tls ca issued ls)", []string{"ca", "revoke", "--serial", "0123abcdef"}},
		{`"0123" is not a serial: give at least 8 hex digits (docker tls ca issued ls)`, []string{"ca", "revoke", "--serial", "0123"}},
		{`no token with id "nosuch" (docker tls ca tokens ls)`, []string{"ca", "revoke-token", "nosuch"}},
		{"CN: the common name \"x\\ty\" contains a control character", []string{"ca", "revoke", "x\ty"}},
		{`--format "yaml": use json`, []string{"ca", "token", "--format", "yaml"}},
		{"name the engines to set a policy on, or give --all", []string{"engine", "policy", "set", "--grant", "user:a=admin"}},
		{`--grant "user:a": give SUBJECT=ROLE`, []string{"engine", "policy", "set", "--all", "--grant", "user:a"}},
		{`--grant "user:a=root"`, []string{"engine", "policy", "set", "--all", "--grant", "user:a=root"}},
		{"--grant user:a=admin and --revoke-grant user:a name the same subject", []string{"engine", "policy", "set", "--all", "--grant", "user:a=admin", "--revoke-grant", "user:a"}},
		{`--local "maybe": give allow or deny`, []string{"engine", "policy", "set", "--all", "--local", "maybe"}},
		{"not a Linux executable", []string{"engine", "policy", "set", "--all", "--grant", "user:a=admin", "--plugin-binary", "/etc/hostname"}},
		{`no engine "nosuch"`, []string{"engine", "policy", "set", "nosuch", "--grant", "user:a=admin"}},
		{"name the engines to turn the policy off on, or give --all", []string{"engine", "policy", "off"}},
		{`--crl-url "http://ca:8443/crl": give the CA service's https://HOST:PORT/crl (or none)`, []string{"engine", "policy", "set", "--all", "--crl-url", "http://ca:8443/crl"}},
		{"--crl-interval 1s: give a duration from 5s to 24h", []string{"engine", "policy", "set", "--all", "--crl-interval", "1s"}},
		{`--since "soon": give a span like 30d`, []string{"engine", "audit", "e", "--since", "soon"}},
		{`--user: the common name "a\nb" contains a control character`, []string{"engine", "audit", "e", "--user", "a\nb"}},
		{"--grant: the policy gives the engine's context (user:alice, groups ops) no admin role", []string{"engine", "setup", "root@host", "--client-name", "alice", "--group", "ops", "--grant", "group:ops=operator"}},
		{"--plugin-binary goes with --grant", []string{"engine", "setup", "root@host", "--plugin-binary", "/bin/true"}},
		{`--catalog-admin "*": give user:CN or group:NAME`, []string{"ca", "serve", "--catalog-admin", "*"}},
		{`--catalog-admin "ops": give user:CN or group:NAME`, []string{"ca", "serve", "--catalog-admin", "ops"}},
		{"enroll needs the NAME of the context to make, or --engines", []string{"enroll", "--ca-url", "https://ca.example.com:2377", "--ca-fingerprint", "sha256:" + strings.Repeat("ab", 32)}},
		{"enroll NAME needs --host tcp://HOST:2376", []string{"enroll", "team", "--ca-url", "https://ca.example.com:2377", "--ca-fingerprint", "sha256:" + strings.Repeat("ab", 32)}},
		{"--prefix goes with --engines", []string{"enroll", "team", "--host", "tcp://h:2376", "--prefix", "t-", "--ca-url", "https://ca.example.com:2377", "--ca-fingerprint", "sha256:" + strings.Repeat("ab", 32)}},
		{"--engines names each context after its engine: give no NAME", []string{"enroll", "team", "--engines", "--ca-url", "https://ca.example.com:2377", "--ca-fingerprint", "sha256:" + strings.Repeat("ab", 32)}},
		{"--engines takes each engine's endpoint from the catalog: give no --host", []string{"enroll", "--engines", "--host", "tcp://h:2376", "--ca-url", "https://ca.example.com:2377", "--ca-fingerprint", "sha256:" + strings.Repeat("ab", 32)}},
		{"--force does not go with --engines", []string{"enroll", "--engines", "--force", "--ca-url", "https://ca.example.com:2377", "--ca-fingerprint", "sha256:" + strings.Repeat("ab", 32)}},
		{`--prefix "-x" cannot begin a context name`, []string{"enroll", "--engines", "--prefix", "-x", "--ca-url", "https://ca.example.com:2377", "--ca-fingerprint", "sha256:" + strings.Repeat("ab", 32)}},
		{"name the engines to publish, or give --all", []string{"engine", "publish", "--ca-url", "https://ca.example.com:2377"}},
		{`--ca-url "ftp://ca": give https://HOST:PORT`, []string{"engine", "publish", "--all", "--ca-url", "ftp://ca"}},
		{`no engine "nosuch"`, []string{"engine", "publish", "nosuch", "--ca-url", "https://ca.example.com:2377"}},
	} {
		t.Run(tc.want, func(t *testing.T) {
			c.t = t
			c.fails(tc.want, tc.args...)
		})
	}
}

// TestListFieldsAndOfflineVerify: every field ls and ca ls offer answers
// in a template and in JSON, and verify checks local files alone
// (--offline), of several contexts (the summary) and of files given with
// --host, and exports a p12 that holds the context's identity.
func TestListFieldsAndOfflineVerify(t *testing.T) {
	c := newTestCLI(t)
	c.must("ca", "init")
	c.must("context", "create", "aa", "--host", "tcp://127.0.0.1:2376", "--issue", "--description", "first")
	c.must("context", "create", "bb", "--host", "tcp://127.0.0.1:2377", "--issue")

	c.must("ls", "--format", "{{.Name}}|{{.Description}}|{{.Host}}|{{.Current}}|{{.Managed}}|{{.Client}}|{{.DaysLeft}}|{{.KeyStore}}|{{.Locked}}|{{.CA}}|{{.Error}}|{{.Expires}}|{{.Agent}}|{{.Key}}")
	if !strings.Contains(c.Stdout, "aa|first|tcp://127.0.0.1:2376|") || !strings.Contains(c.Stdout, "|default|") {
		t.Errorf("ls template:\n%s", c.Stdout)
	}
	c.must("ls", "--format", "json")
	for _, line := range strings.Split(strings.TrimSpace(c.Stdout), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil || v["Name"] == nil {
			t.Errorf("ls json line %q: %v", line, err)
		}
	}
	c.must("ca", "ls", "--format", "{{.Name}}|{{.KeyType}}|{{.KeyStore}}|{{.KeyID}}|{{.Subject}}|{{.Issuer}}|{{.Serial}}|{{.Path}}|{{.Imported}}|{{.DaysLeft}}|{{.Error}}|{{.NotBefore}}|{{.NotAfter}}|{{.Fingerprint}}|{{.FullFingerprint}}|{{.Expires}}")
	if !strings.HasPrefix(c.Stdout, "default|ECDSA P-256|") {
		t.Errorf("ca ls template:\n%s", c.Stdout)
	}
	c.must("ca", "ls", "--format", "json")
	var ca map[string]any
	if err := json.Unmarshal([]byte(c.Stdout), &ca); err != nil || ca["Name"] != "default" {
		t.Errorf("ca ls json %q: %v", c.Stdout, err)
	}

	c.must("verify", "--all", "--offline")
	for _, want := range []string{"CONTEXT", "aa ", "bb ", "tcp://127.0.0.1:2377"} {
		if !strings.Contains(c.Stdout, want) {
			t.Errorf("verify summary lacks %q:\n%s", want, c.Stdout)
		}
	}
	dir := filepath.Join(t.TempDir(), "aa-tls")
	c.must("export", "aa", "--format", "dir", "--out", dir)
	c.must("verify", "--host", "tcp://127.0.0.1:2376", "--ca", filepath.Join(dir, "ca.pem"), "--cert", filepath.Join(dir, "cert.pem"), "--key", filepath.Join(dir, "key.pem"), "--offline")
	if !strings.Contains(c.Stdout, "client-cert") || strings.Contains(c.Stdout, "FAIL") {
		t.Errorf("verify --host --offline:\n%s", c.Stdout)
	}
	c.fails("--ca, --cert and --key go with --host", "verify", "aa", "--ca", filepath.Join(dir, "ca.pem"))
}

// TestAgentInstallEngineListAndCAImport: agent install writes its login
// service once and refuses to replace a different one without --force;
// engine ls lists records in every format; ca import adopts a CA made
// elsewhere, which then issues.
func TestAgentInstallEngineListAndCAImport(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("agent install writes a systemd unit on Linux; this test checks that one")
	}
	c := newTestCLI(t)
	c.must("agent", "install", "--idle-lock", "8h")
	unit := filepath.Join(filepath.Dir(c.dir), ".config", "systemd", "user", "docker-tls-agent.service")
	data, err := os.ReadFile(unit)
	if err != nil || !strings.Contains(string(data), `"--idle-lock" "8h0m0s"`) || !strings.Contains(c.Stdout, "systemctl --user") {
		t.Fatalf("unit %s: %v\n%s\n%s", unit, err, data, c.Stdout)
	}
	c.must("agent", "install", "--idle-lock", "8h")
	if !strings.Contains(c.Stdout, "already installed and unchanged") {
		t.Errorf("second install: %s", c.Stdout)
	}
	c.fails("exists with other settings: --force replaces it", "agent", "install")
	c.must("agent", "install", "--force")

	recs := engine.Records{Dir: filepath.Join(c.dir, "tls", "engines")}
	for _, name := range []string{"build-1", "build-2"} {
		if err := recs.Put(&engine.Record{Name: name, Dest: "ssh://root@" + name, Context: name, CA: "default", Host: "tcp://" + name + ":2376", Port: 2376,
			TLSDir: engine.DefaultTLSDir, Status: engine.StatusReady, NotAfter: time.Now().Add(400 * 24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.must("engine", "ls", "-q"); got != "build-1\nbuild-2\n" {
		t.Errorf("engine ls -q: %q", got)
	}
	c.must("engine", "ls")
	if !strings.Contains(c.Stdout, "ssh://root@build-2") || !strings.Contains(c.Stdout, "SERVER CERT EXPIRES") {
		t.Errorf("engine ls:\n%s", c.Stdout)
	}
	c.must("engine", "ls", "--format", "json")
	if strings.Count(c.Stdout, `"Name":"build-`) != 2 {
		t.Errorf("engine ls json:\n%s", c.Stdout)
	}

	ca := pkitest.NewCA(t, "made elsewhere", "")
	dir := t.TempDir()
	keyPEM, err := pki.EncodePrivateKey(ca.Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), pki.EncodeCertificate(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca-key.pem"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	c.fails(`required flag(s) "cert" not set`, "ca", "import", "outside", "--key", filepath.Join(dir, "ca-key.pem"))
	c.must("ca", "import", "outside", "--cert", filepath.Join(dir, "ca.pem"), "--key", filepath.Join(dir, "ca-key.pem"))
	c.must("client", "issue", "me", "--ca", "outside", "--out", filepath.Join(dir, "client"))
	cert, err := os.ReadFile(filepath.Join(dir, "client", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if leaf, err := pki.ParseCertificate(cert); err != nil || leaf.CheckSignatureFrom(ca.Cert) != nil {
		t.Errorf("a client certificate from the imported CA: %v", err)
	}
}

// TestKeysPrune: keys prune removes a key no CA or context owns and a
// temp file a killed write left, and --dry-run only names them.
func TestKeysPrune(t *testing.T) {
	c := newTestCLI(t)
	c.must("ca", "init", "--keystore", "file")
	keys := filepath.Join(c.dir, "tls", "keys")
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := pki.EncodePrivateKey(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(keys, "ctx-gone-0123456789ab.pem")
	stray := filepath.Join(keys, ".ctx-gone-0123456789ab.pem.tmp-42")
	for _, f := range []string{orphan, stray} {
		if err := os.WriteFile(f, pemKey, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.must("keys", "prune", "--dry-run")
	for _, want := range []string{"would remove: orphan key ctx-gone-0123456789ab (file key store)", "would remove: " + stray} {
		if !strings.Contains(c.Stdout, want) {
			t.Errorf("keys prune --dry-run lacks %q:\n%s", want, c.Stdout)
		}
	}
	for _, f := range []string{orphan, stray} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("--dry-run removed %s: %v", f, err)
		}
	}
	c.must("keys", "prune")
	if !strings.Contains(c.Stdout, "removed: orphan key ctx-gone-0123456789ab") || !strings.Contains(c.Stdout, "removed: "+stray) {
		t.Errorf("keys prune:\n%s", c.Stdout)
	}
	for _, f := range []string{orphan, stray} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s is still there after keys prune: %v", f, err)
		}
	}
	if out := strings.TrimSpace(c.must("keys", "prune")); out != "Nothing to prune" {
		t.Errorf("a second prune: %q", out)
	}
	c.must("ca", "ls")
}

// With no Secret Service, a command whose new key would go to the keyring
// is refused before it writes anything: no certificate recorded in the CA's
// inventory, no intent that the next command would have to undo in a
// keyring it cannot reach either.
func TestUnreachableKeyringIsRefusedFirst(t *testing.T) {
	c := listingState(t)
	c.keyring.Unreachable(true)
	for _, args := range [][]string{
		{"ca", "init", "other"},
		{"context", "create", "new", "--host", "tcp://h:2376", "--issue"},
		{"context", "create", "new", "--host", "tcp://h:2376", "--issue", "--keystore", "keyring", "--ca", "team"},
	} {
		// The reason after "not available:" depends on whether this test
		// runs with a session bus; the hint is given for that error alone.
		c.fails("(use --keystore file on machines without one)", args...)
	}
	c.must("ca", "init", "other", "--keystore", "file")
}
