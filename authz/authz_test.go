package authz

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/docker/go-plugins-helpers/sdk"

	"github.com/docker-tls/docker-tls/internal/pkitest"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/policy"
)

func client(t *testing.T, ca *pki.CA, cn string, groups ...string) *x509.Certificate {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: cn, Groups: groups, PublicKey: key.Public(), Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func writeConfig(t *testing.T, path string, cfg Config) {
	t.Helper()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPluginThroughTheProtocol sends dockerd's requests, as JSON over a
// unix socket, to the plugin served by Docker's helper.
func TestPluginThroughTheProtocol(t *testing.T) {
	dir := t.TempDir()
	ca := pkitest.NewCA(t, "engine CA", "")
	alice, bob, carol := client(t, ca, "alice", "ops"), client(t, ca, "bob"), client(t, ca, "carol", "ops")
	cfgPath := filepath.Join(dir, "policy.json")
	cfg := Config{Engine: "build", Policy: policy.Policy{Grants: []policy.Grant{{Subject: "group:ops", Role: policy.Operator}, {Subject: "user:bob", Role: policy.Viewer}}}}
	writeConfig(t, cfgPath, cfg)
	var rejected []error
	audit := &AuditLog{Path: filepath.Join(dir, "audit", "audit.log"), MaxBytes: 1 << 20}
	p := &Plugin{
		Decider: &Decider{Rules: policy.NewRules(), Revoked: func(_ string, c *x509.Certificate) bool { return c.SerialNumber.Cmp(carol.SerialNumber) == 0 }},
		Config:  &ConfigFile{Path: cfgPath, Rejected: func(err error) { rejected = append(rejected, err) }},
		Audit: func(d Decision) {
			if err := audit.Write(d); err != nil {
				t.Error(err)
			}
		},
	}
	sock := filepath.Join(dir, "docker-tls.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	h := Handler(p, started)
	go func() { _ = h.Serve(l) }()
	t.Cleanup(func() { l.Close() })
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	ask := func(t *testing.T, raw []byte) authorization.Response {
		t.Helper()
		resp, err := hc.Post("http://plugin/"+authorization.AuthZApiRequest, "application/json", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		// One answer, always in the helper's content type: a request that
		// does not decode is refused like any other, not with an error
		// line ahead of an answer.
		var out authorization.Response
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != sdk.DefaultContentTypeV1_1 {
			t.Errorf("answer %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return out
	}
	req := func(method, uri, body string, headers map[string]string, cert *x509.Certificate) []byte {
		r := authorization.Request{RequestMethod: method, RequestURI: uri, RequestHeaders: headers}
		if body != "" {
			r.RequestBody = []byte(body)
		}
		if cert != nil {
			pc := authorization.PeerCertificate(*cert)
			r.RequestPeerCertificates = []*authorization.PeerCertificate{&pc}
		}
		raw, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	tests := []struct {
		name    string
		raw     []byte
		allow   bool
		message string
	}{
		{"operator creates a plain container", req("POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{}}`, nil, alice), true, ""},
		{"operator cannot go privileged", req("POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{"Privileged":true}}`, nil, alice), false,
			`"alice" (groups ops) has the role operator on this engine, and POST /v1.47/containers/create needs admin (a privileged container is root on the host): an admin can run docker tls engine policy set build --grant user:alice=admin`},
		{"a body too large to pass on fails closed", req("POST", "/v1.47/containers/create?name=x", "", map[string]string{"Content-Length": "2000000"}, alice), false, "cannot be checked"},
		{"viewer lists", req("GET", "/v1.47/containers/json", "", nil, bob), true, ""},
		{"viewer cannot start", req("POST", "/v1.47/containers/abc/start", "", nil, bob), false, `"bob" has the role viewer on this engine, and POST /v1.47/containers/abc/start needs operator`},
		{"a revoked certificate is refused whatever its role", req("GET", "/_ping", "", nil, carol), false, "is revoked"},
		{"the host's own socket", req("GET", "/v1.47/info", "", nil, nil), true, ""},
		{"a request that did not decode", []byte(`{"RequestMethod": 5`), false, "could not be read"},
		// Method and path decode before the certificate: a request whose
		// certificate does not parse must not pass as a local call.
		{"a certificate that does not parse", []byte(`{"RequestMethod":"GET","RequestUri":"/v1.47/info","RequestPeerCertificates":["bm90IGEgY2VydGlmaWNhdGU="]}`), false, "could not be read"},
		{"a certificate that is not a string", []byte(`{"RequestMethod":"GET","RequestUri":"/v1.47/info","RequestPeerCertificates":[5]}`), false, "could not be read"},
		{"the same certificate again (cached)", req("POST", "/v1.47/containers/abc/start", "", nil, bob), false, `"bob" has the role viewer on this engine`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ask(t, tc.raw)
			if got.Allow != tc.allow || !strings.Contains(got.Msg, tc.message) {
				t.Errorf("allow %v, %q; want %v, %q", got.Allow, got.Msg, tc.allow, tc.message)
			}
		})
	}

	// Every answer passes (the decision was the request's), whatever it
	// carries, in the helper's content type; and it is not audited.
	resp := req("GET", "/v1.47/containers/json", "", nil, bob)
	for _, raw := range [][]byte{resp, []byte(`{"ResponseBody": "not base64!"}`)} {
		r, err := hc.Post("http://plugin/"+authorization.AuthZApiResponse, "application/json", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		var out authorization.Response
		if err := json.Unmarshal(body, &out); err != nil || !out.Allow || r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != sdk.DefaultContentTypeV1_1 {
			t.Errorf("AuthZRes: %d %q %s: %+v %v", r.StatusCode, r.Header.Get("Content-Type"), body, out, err)
		}
	}

	// The status names the file in force by its digest.
	st, err := QueryStatus(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(cfgPath)
	if sum := sha256.Sum256(raw); st.PolicyDigest != hex.EncodeToString(sum[:]) || st.Engine != "build" || st.Grants != 2 || !st.Started.Equal(started.UTC()) {
		t.Errorf("status %+v", st)
	}

	// A policy that turns local calls off; then a broken file: the last
	// good policy stays, and the rejection is told once.
	cfg.LocalDeny = true
	writeConfig(t, cfgPath, cfg)
	st2, err := QueryStatus(context.Background(), sock)
	if err != nil || st2.PolicyDigest == st.PolicyDigest || !st2.LocalDeny {
		t.Errorf("status after a change %+v, %v", st2, err)
	}
	if got := ask(t, req("GET", "/v1.47/info", "", nil, nil)); got.Allow {
		t.Error("a local call passed with LocalDeny")
	}
	if err := os.WriteFile(cfgPath, []byte(`{"policy":{"grants":[{"subject":"user:x","role":"root"}]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := ask(t, req("GET", "/v1.47/containers/json", "", nil, bob)); !got.Allow {
			t.Errorf("a broken policy file replaced the last good one: %q", got.Msg)
		}
	}
	if st3, err := QueryStatus(context.Background(), sock); err != nil || st3.PolicyDigest != st2.PolicyDigest {
		t.Errorf("status after a broken file %+v, %v: want the last good one's", st3, err)
	}
	if len(rejected) != 1 {
		t.Errorf("rejections told: %v, want one", rejected)
	}

	data, err := os.ReadFile(audit.Path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 12 { // every decided call; the undecodable ones never reached a decision
		t.Errorf("%d audit lines, want 12:\n%s", len(lines), data)
	}
	var d Decision
	if err := json.Unmarshal([]byte(lines[1]), &d); err != nil || d.Allow || d.User != "alice" || d.Path != "/v1.47/containers/create" || d.Needs != "admin" || d.Role != "operator" {
		t.Errorf("audit line %s: %+v %v", lines[1], d, err)
	}
	if fi, err := os.Stat(audit.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v, %v", fi.Mode().Perm(), err)
	}
}

// TestPeerCacheBounded: a certificate is parsed once per wire form, and
// the cache starts over when full rather than growing with every new
// client.
func TestPeerCacheBounded(t *testing.T) {
	ca := pkitest.NewCA(t, "engine CA", "")
	alice := client(t, ca, "alice", "ops")
	raw, err := json.Marshal(pki.EncodeCertificate(alice))
	if err != nil {
		t.Fatal(err)
	}
	var c peerCache
	first, err := c.one(raw)
	if err != nil || first.Subject.CommonName != "alice" || !first.Equal(alice) {
		t.Fatalf("parse: %v, %v", first, err)
	}
	if again, _ := c.one(raw); again != first {
		t.Error("the same wire form was parsed again")
	}
	// Distinct wire forms of one certificate: JSON decodes the string
	// whatever white space leads it.
	for i := 1; i <= peerCacheMax; i++ {
		cert, err := c.one(json.RawMessage(strings.Repeat(" ", i) + string(raw)))
		if err != nil || !cert.Equal(alice) {
			t.Fatalf("variant %d: %v", i, err)
		}
		if len(c.m) > peerCacheMax {
			t.Fatalf("%d entries after %d certificates, bound %d", len(c.m), i+1, peerCacheMax)
		}
	}
	if len(c.m) >= peerCacheMax {
		t.Errorf("%d entries: the cache did not start over when full", len(c.m))
	}
}

func TestAuditLogRotates(t *testing.T) {
	l := &AuditLog{Path: filepath.Join(t.TempDir(), "audit.log"), MaxBytes: 300}
	for range 5 {
		if err := l.Write(Decision{Method: "GET", Path: "/_ping", Role: "viewer", Needs: "viewer", Rule: "*", Allow: true}); err != nil {
			t.Fatal(err)
		}
	}
	cur, _ := os.ReadFile(l.Path)
	old, err := os.ReadFile(l.Path + ".1")
	if err != nil || len(cur) >= 300 || len(old) == 0 {
		t.Errorf("after 5 lines: current %d bytes, rotated %d (%v)", len(cur), len(old), err)
	}
}

func TestParseConfigRefusesUnknownKeys(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"a key this version does not know", `{"engine":"e","policy":{"grants":[]},"roles":{}}`, "unknown field"},
		{"a role that does not exist", `{"policy":{"grants":[{"subject":"user:x","role":"root"}]}}`, "root"},
		{"a subject granted twice", `{"policy":{"grants":[{"subject":"user:x","role":"viewer"},{"subject":"user:x","role":"admin"}]}}`, "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseConfig([]byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseConfig: %v, want %q", err, tc.want)
			}
		})
	}
	cfg, err := ParseConfig([]byte(`{"engine":"e","policy":{"grants":[{"subject":"*","role":"viewer"}]},"localDeny":true}`))
	if err != nil || !cfg.LocalDeny || len(cfg.Policy.Grants) != 1 || len(cfg.Digest) != 64 {
		t.Errorf("ParseConfig: %+v, %v", cfg, err)
	}
}
