package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// caServe starts `docker tls ca serve` for a CA of e on a free loopback port
// and returns its URL.
func caServe(t *testing.T, e *Env, ca string, flags ...string) (string, *Proc) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	p := e.Start("docker", append([]string{"tls", "ca", "serve", "--ca", ca, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--san", "127.0.0.1,localhost"}, flags...)...)
	p.WaitFor("Serving CA")
	return fmt.Sprintf("https://127.0.0.1:%d", port), p
}

// remoteCAEngine is an engine's host with a CA "engine" whose key stays
// there, a dockerd on loopback serving a certificate of it (its files in
// srv), and a laptop with nothing yet.
func remoteCAEngine(t *testing.T) (host, laptop *Env, d *Dockerd, srv string) {
	t.Helper()
	need(t, "docker")
	needRoot(t)
	need(t, "dockerd")
	host, laptop = NewEnv(t), NewEnv(t)
	host.MustTLS("ca", "init", "engine")
	srv = host.Path("srv")
	host.MustTLS("server", "issue", "localhost", "127.0.0.1", "--ca", "engine", "--out", srv)
	return host, laptop, StartDockerd(t, ServerDir(srv)), srv
}

// mintToken runs `docker tls ca token` and writes the token to a 0600 file,
// so it never appears in any command line; it is also registered as a
// secret that no output may contain.
func mintToken(t *testing.T, host, laptop *Env, args ...string) string {
	t.Helper()
	r := host.MustTLS(append([]string{"ca", "token"}, args...)...)
	tok := strings.TrimSpace(r.Stdout)
	if !strings.HasPrefix(tok, "DTLS1-") {
		t.Fatalf("token: %s", r)
	}
	// DTLS1-<64 hex>-<secret>; the secret itself may contain '-'.
	secret := tok[len("DTLS1-")+64+1:]
	host.Secrets = append(host.Secrets, secret)
	laptop.Secrets = append(laptop.Secrets, secret)
	f := laptop.Path(fmt.Sprintf("token-%d", time.Now().UnixNano()))
	write(t, f, tok+"\n")
	return "file:" + f
}

// laptopState is what a refused enrollment must leave untouched: the
// contexts and every key in every store.
func laptopState(t *testing.T, e *Env) string {
	t.Helper()
	keys := e.MustTLS("keys", "ls", "--format", "{{.ID}} {{.Store}} {{.Owner}}")
	return snapshot(t, filepath.Join(e.ConfigDir, "contexts")) + "\n" + keys.Stdout
}

// TestRemoteCAEnroll: the CA key stays on the engine's host; the laptop
// sends only a CSR with a one-time token and ends with a working context.
func TestRemoteCAEnroll(t *testing.T) {
	host, laptop, d, srv := remoteCAEngine(t)
	url, serve := caServe(t, host, "engine")

	tok := mintToken(t, host, laptop, "--ca", "engine", "--cn", "alice")
	r := laptop.MustTLS("enroll", "prod", "--ca-url", url, "--token", tok, "--host", d.Host)
	if !strings.Contains(r.Stdout, "Verified") || !strings.Contains(r.Stdout, `client "CN=alice"`) {
		t.Fatalf("enroll: %s", r)
	}
	requireOK(t, laptop.Docker("--context", "prod", "version", "--format", "{{.Server.Version}}"))
	// The laptop never had the CA key; the engine's host never had the client key.
	if keys := laptop.MustTLS("keys", "ls", "--format", "{{.Owner}}"); strings.Contains(keys.Stdout, "ca/") {
		t.Fatalf("laptop holds a CA key:\n%s", keys.Stdout)
	}
	issued := host.MustTLS("ca", "issued", "ls", "--ca", "engine", "--format", "{{.CN}} {{.Profile}} {{.Source}}")
	// The engine's server certificate, issued on the host, is in the
	// inventory too.
	if strings.TrimSpace(issued.Stdout) != "localhost server file "+srv+"\nalice client 127.0.0.1" {
		t.Fatalf("inventory:\n%s", issued.Stdout)
	}
	if toks := host.MustTLS("ca", "tokens", "ls", "--ca", "engine", "--format", "{{.State}}"); strings.TrimSpace(toks.Stdout) != "used" {
		t.Fatalf("tokens:\n%s", toks.Stdout)
	}
	if !strings.Contains(serve.Output(), `issued serial=`) || !strings.Contains(serve.Output(), `cn="alice"`) {
		t.Fatalf("ca serve log:\n%s", serve.Output())
	}

	t.Run("client issue and context create --issue work against the remote CA too", func(t *testing.T) {
		out := laptop.Path("remote-files")
		laptop.MustTLS("client", "issue", "bob", "--ca-url", url, "--token", mintToken(t, host, laptop, "--ca", "engine"), "--out", out)
		requireOK(t, laptop.DockerVia(d.Host, DirTLS(out), "version", "--format", "{{.Server.Version}}"))
		laptop.MustTLS("context", "create", "prod2", "--host", d.Host, "--issue", "--ca-url", url, "--token", mintToken(t, host, laptop, "--ca", "engine"))
		requireOK(t, laptop.Docker("--context", "prod2", "version", "--format", "{{.Server.Version}}"))
	})

	t.Run("a token's groups are the enrolled certificate's, and the laptop cannot add its own", func(t *testing.T) {
		tok := mintToken(t, host, laptop, "--ca", "engine", "--cn", "carol", "--group", "ops", "--group", "dev")
		if toks := host.MustTLS("ca", "tokens", "ls", "--ca", "engine", "--format", "{{.CN}} {{.Groups}}"); !strings.Contains(toks.Stdout, "carol dev,ops") {
			t.Fatalf("tokens ls:\n%s", toks.Stdout)
		}
		requireFail(t, laptop.TLS("enroll", "grp-own", "--ca-url", url, "--token", tok, "--host", d.Host, "--group", "admins"), "unknown flag: --group")
		requireFail(t, laptop.TLS("context", "create", "grp-own", "--host", d.Host, "--issue", "--ca-url", url, "--token", tok, "--group", "admins"), "the CA service decides the groups")
		laptop.MustTLS("enroll", "grp", "--ca-url", url, "--token", tok, "--host", d.Host)
		requireOK(t, laptop.Docker("--context", "grp", "version", "--format", "{{.Server.Version}}"))
		if ls := laptop.MustTLS("ls", "--format", "{{.Name}} {{.Client}} {{.Groups}}"); !strings.Contains(ls.Stdout, "grp carol dev,ops") {
			t.Fatalf("ls:\n%s", ls.Stdout)
		}
		if issued := host.MustTLS("ca", "issued", "ls", "--ca", "engine", "--format", "{{.CN}} {{.Groups}}"); !strings.Contains(issued.Stdout, "carol dev,ops") {
			t.Fatalf("ca issued ls:\n%s", issued.Stdout)
		}
	})

	t.Run("a token for two uses enrolls twice, then no more", func(t *testing.T) {
		tok := mintToken(t, host, laptop, "--ca", "engine", "--uses", "2")
		for _, name := range []string{"use1", "use2"} {
			laptop.MustTLS("enroll", name, "--ca-url", url, "--token", tok, "--host", d.Host)
			requireOK(t, laptop.Docker("--context", name, "version", "--format", "{{.Server.Version}}"))
		}
		requireFail(t, laptop.TLS("enroll", "use3", "--ca-url", url, "--token", tok, "--host", d.Host), "already been used")
		requireFail(t, host.TLS("ca", "token", "--ca", "engine", "--uses", "0"), "--uses 0")
	})

	t.Run("--no-verify keeps the context when the engine cannot be checked", func(t *testing.T) {
		port, _ := freePort()
		nowhere := fmt.Sprintf("tcp://127.0.0.1:%d", port)
		laptop.MustTLS("enroll", "later", "--ca-url", url, "--token", mintToken(t, host, laptop, "--ca", "engine"), "--host", nowhere, "--no-verify")
		if ls := laptop.MustTLS("ls", "--format", "{{.Name}} {{.Host}}"); !strings.Contains(ls.Stdout, "later "+nowhere) {
			t.Fatalf("ls after enroll --no-verify:\n%s", ls.Stdout)
		}
		requireFail(t, laptop.TLS("verify", "later", "--timeout", "2s"), "1 of 1 failed")
	})

	t.Run("ca revoke: a revoked identity neither enrolls nor renews; issued ls shows it", func(t *testing.T) {
		laptop.MustTLS("enroll", "gone", "--ca-url", url, "--token", mintToken(t, host, laptop, "--ca", "engine", "--cn", "lost-laptop"), "--host", d.Host)
		serial := strings.TrimSpace(host.MustTLS("ca", "issued", "ls", "--ca", "engine", "--format", `{{if eq .CN "lost-laptop"}}{{.Serial}}{{end}}`).Stdout)
		r := host.MustTLS("ca", "revoke", "lost-laptop", "--ca", "engine", "--reason", "stolen")
		if !strings.Contains(r.Stdout, `Revoked identity "lost-laptop": 1 certificate(s)`) || !strings.Contains(r.Stderr, "until they expire") {
			t.Fatalf("revoke: %s", r)
		}
		state := host.MustTLS("ca", "issued", "ls", "--ca", "engine", "--format", "{{.Serial}} {{.State}} {{.Reason}}")
		if !strings.Contains(state.Stdout, serial+" revoked stolen") {
			t.Fatalf("issued ls after revoke (serial %q):\n%s", serial, state.Stdout)
		}
		requireFail(t, laptop.TLS("renew", "gone"), "revoked by the CA's operator", "old certificate is unchanged")
		before := laptopState(t, laptop)
		requireFail(t, laptop.TLS("enroll", "again", "--ca-url", url, "--token", mintToken(t, host, laptop, "--ca", "engine"), "--client-name", "lost-laptop", "--host", d.Host),
			"identity was revoked")
		if after := laptopState(t, laptop); after != before {
			t.Fatalf("a refused enrollment left something behind:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		requireFail(t, host.TLS("ca", "revoke", "nobody-at-all", "--ca", "engine"), `issued nothing to or with "nobody-at-all"`)
		requireFail(t, host.TLS("ca", "revoke", "--ca", "engine"), "say what to revoke")
		if !strings.Contains(serve.Output(), `refused source=127.0.0.1 code=403`) {
			t.Fatalf("ca serve log:\n%s", serve.Output())
		}

		// The CA's CRL lists the revoked certificate: openssl refuses it
		// and accepts another; ca serve answers the same list at /crl.
		need(t, "openssl")
		need(t, "curl")
		caPEM := strings.TrimSpace(host.MustTLS("ca", "ls", "--format", `{{if eq .Name "engine"}}{{.Path}}{{end}}`).Stdout)
		crlFile := host.Path("engine-crl.pem")
		host.MustTLS("ca", "crl", "engine", "--out", crlFile)
		certFile := func(ctx string) string {
			r := laptop.Docker("context", "inspect", ctx, "--format", "{{.Storage.TLSPath}}")
			requireOK(t, r)
			return filepath.Join(strings.TrimSpace(r.Stdout), "docker", "cert.pem")
		}
		if out, err := exec.Command("openssl", "verify", "-crl_check", "-CAfile", caPEM, "-CRLfile", crlFile, certFile("gone")).CombinedOutput(); err == nil || !strings.Contains(string(out), "certificate revoked") {
			t.Fatalf("openssl verify of the revoked certificate against the CRL: %v\n%s", err, out)
		}
		openssl(t, host.Path(), "verify", "-crl_check", "-CAfile", caPEM, "-CRLfile", crlFile, certFile("prod"))
		served := host.Path("served.crl")
		if out, err := exec.Command("curl", "-sS", "--fail", "--cacert", caPEM, "-o", served, url+"/crl").CombinedOutput(); err != nil {
			t.Fatalf("curl %s/crl: %v\n%s", url, err, out)
		}
		openssl(t, host.Path(), "crl", "-in", crlFile, "-outform", "DER", "-out", host.Path("file.crl"))
		a, _ := os.ReadFile(served)
		b, _ := os.ReadFile(host.Path("file.crl"))
		if len(a) == 0 || string(a) != string(b) {
			t.Fatalf("GET /crl (%d bytes) is not the CRL ca crl wrote (%d bytes)", len(a), len(b))
		}
	})

	mitmHost := NewEnv(t)
	mitmHost.MustTLS("ca", "init", "evil")
	mitmURL, _ := caServe(t, mitmHost, "evil")

	attacks := []struct {
		name string
		args func(t *testing.T) []string
		want string
	}{
		{"reused token", func(t *testing.T) []string {
			tok := mintToken(t, host, laptop, "--ca", "engine")
			laptop.MustTLS("enroll", "once", "--ca-url", url, "--token", tok, "--host", d.Host)
			return []string{"enroll", "twice", "--ca-url", url, "--token", tok, "--host", d.Host}
		}, "already been used"},
		{"expired token", func(t *testing.T) []string {
			tok := mintToken(t, host, laptop, "--ca", "engine", "--ttl", "1s")
			time.Sleep(1100 * time.Millisecond)
			return []string{"enroll", "late", "--ca-url", url, "--token", tok, "--host", d.Host}
		}, "expired"},
		{"revoked token", func(t *testing.T) []string {
			tok := mintToken(t, host, laptop, "--ca", "engine", "--cn", "to-be-revoked")
			var id string
			for _, line := range strings.Split(host.MustTLS("ca", "tokens", "ls", "--ca", "engine", "--format", "{{.ID}} {{.CN}} {{.State}}").Stdout, "\n") {
				if f := strings.Fields(line); len(f) == 3 && f[1] == "to-be-revoked" && f[2] == "active" {
					id = f[0]
				}
			}
			if r := host.MustTLS("ca", "revoke-token", id, "--ca", "engine"); id == "" || !strings.Contains(r.Stdout, "Revoked token "+id) {
				t.Fatalf("revoke-token %q: %s", id, r)
			}
			requireFail(t, host.TLS("ca", "revoke-token", "no-such-id", "--ca", "engine"), "no-such-id")
			return []string{"enroll", "revoked", "--ca-url", url, "--token", tok, "--client-name", "to-be-revoked", "--host", d.Host}
		}, "unknown or revoked"},
		{"wrong secret", func(t *testing.T) []string {
			tok := strings.TrimPrefix(mintToken(t, host, laptop, "--ca", "engine"), "file:")
			data, _ := os.ReadFile(tok)
			s := strings.TrimSpace(string(data))
			forged := laptop.Path("forged")
			write(t, forged, s[:len("DTLS1-")+64+1]+strings.Repeat("x", 43))
			return []string{"enroll", "forged", "--ca-url", url, "--token", "file:" + forged, "--host", d.Host}
		}, "unknown or revoked"},
		{"a second CA in the middle", func(t *testing.T) []string {
			return []string{"enroll", "mitm", "--ca-url", mitmURL, "--token", mintToken(t, host, laptop, "--ca", "engine"), "--host", d.Host}
		}, "but the token pins"},
		{"a CN the token does not allow", func(t *testing.T) []string {
			return []string{"enroll", "notbob", "--ca-url", url, "--token", mintToken(t, host, laptop, "--ca", "engine", "--cn", "bob"), "--client-name", "mallory", "--host", d.Host}
		}, `it is for CN "bob"`},
		{"a server token for a client", func(t *testing.T) []string {
			return []string{"enroll", "srvtok", "--ca-url", url, "--token", mintToken(t, host, laptop, "--ca", "engine", "--profile", "server", "--san", "x.example.com"), "--host", d.Host}
		}, "server certificate, not client"},
		{"verify fails: the engine is not there", func(t *testing.T) []string {
			port, _ := freePort()
			return []string{"enroll", "nowhere", "--ca-url", url, "--token", mintToken(t, host, laptop, "--ca", "engine"), "--host", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--timeout", "2s"}
		}, "context and its key were removed"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			args := a.args(t)
			before := laptopState(t, laptop)
			r := laptop.TLS(args...)
			requireFail(t, r, a.want)
			if after := laptopState(t, laptop); after != before {
				t.Fatalf("a refused enrollment left something behind:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	if code := serve.Stop(); code != 0 {
		t.Fatalf("ca serve did not stop cleanly on SIGTERM: exit %d\n%s", code, serve.Output())
	}
	if !strings.Contains(serve.Output(), "Stopped") {
		t.Fatalf("ca serve output:\n%s", serve.Output())
	}
}

// cfsslBinary finds cfssl on PATH or where go install puts it.
func cfsslBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("cfssl"); err == nil {
		return p
	}
	out, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(out)), "bin", "cfssl")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Skip("cfssl is not installed (go install github.com/cloudflare/cfssl/cmd/cfssl@v1.6.5; scripts/deps.sh does it)")
	return ""
}

// TestEnrollWithCfssl: enroll gets a client certificate from a real cfssl
// server with an auth key, pinned by fingerprint, and the context works
// against a real dockerd that trusts cfssl's CA.
func TestEnrollWithCfssl(t *testing.T) {
	need(t, "docker")
	cfssl := cfsslBinary(t)
	needRoot(t)
	need(t, "dockerd")
	e := NewEnv(t)
	dir := e.Path("cfssl")
	caCert, caKey := writeCA(t, dir, time.Now(), 5*365*24*time.Hour)
	sans, _, _ := pki.ParseSANs([]string{"127.0.0.1", "localhost"})
	srvCert, srvKey := mintLeaf(t, caCert, caKey, filepath.Join(dir, "tls"), pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans})
	engCert, engKey := mintLeaf(t, caCert, caKey, filepath.Join(dir, "engine"), pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans})
	keyBytes := make([]byte, 16)
	_, _ = rand.Read(keyBytes)
	authKey := hex.EncodeToString(keyBytes)
	e.Secrets = append(e.Secrets, authKey)
	write(t, filepath.Join(dir, "config.json"), fmt.Sprintf(`{
  "signing": {
    "default": {"expiry": "168h"},
    "profiles": {"client": {"expiry": "2160h", "usages": ["digital signature", "client auth"], "auth_key": "primary"}}
  },
  "auth_keys": {"primary": {"type": "standard", "key": %q}}
}`, authKey))
	port, _ := freePort()
	p := e.Start(cfssl, "serve", "-address", "127.0.0.1", "-port", fmt.Sprint(port),
		"-ca", caCert, "-ca-key", caKey, "-config", filepath.Join(dir, "config.json"), "-tls-cert", srvCert, "-tls-key", srvKey)
	p.WaitFor("Now listening")
	d := StartDockerd(t, ServerTLS{CA: caCert, Cert: engCert, Key: engKey})

	fp := e.Run(nil, "openssl", "x509", "-in", caCert, "-noout", "-fingerprint", "-sha256")
	fingerprint := "sha256:" + strings.TrimSpace(fp.Stdout[strings.Index(fp.Stdout, "=")+1:])
	e.Setenv("CFSSL_KEY", authKey)
	r := e.MustTLS("enroll", "cf", "--ca-url", fmt.Sprintf("https://127.0.0.1:%d", port), "--ca-fingerprint", fingerprint,
		"--auth-key", "env:CFSSL_KEY", "--profile", "client", "--client-name", "carol", "--host", d.Host)
	if !strings.Contains(r.Stdout, "Verified") {
		t.Fatalf("enroll with cfssl: %s", r)
	}
	requireOK(t, e.Docker("--context", "cf", "version", "--format", "{{.Server.Version}}"))

	// A wrong fingerprint is refused before anything is sent.
	wrong := "sha256:" + strings.Repeat("AB:", 31) + "AB"
	requireFail(t, e.TLS("enroll", "cf2", "--ca-url", fmt.Sprintf("https://127.0.0.1:%d", port), "--ca-fingerprint", wrong,
		"--auth-key", "env:CFSSL_KEY", "--host", d.Host), "but the token pins")
	// A wrong auth key is refused by cfssl.
	e.Setenv("CFSSL_KEY", strings.Repeat("00", 16))
	requireFail(t, e.TLS("enroll", "cf3", "--ca-url", fmt.Sprintf("https://127.0.0.1:%d", port), "--ca-fingerprint", fingerprint,
		"--auth-key", "env:CFSSL_KEY", "--host", d.Host), "the CA refused")
}

// TestCAServeRefusesBadRequests sends what an attacker would to the real
// `docker tls ca serve` process: an oversized body, malformed JSON, a CSR
// whose signature does not verify, and 50 wrong tokens in a row from one
// source, which end in 429. Before them, 50 retries of a real token that
// was spent, from the same source, block nothing: a fresh token enrolls
// after them (an office behind one address). Only the two real tokens are
// issued.
func TestCAServeRefusesBadRequests(t *testing.T) {
	need(t, "docker")
	host := NewEnv(t)
	host.MustTLS("ca", "init", "engine")
	url, serve := caServe(t, host, "engine")
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	post := func(body []byte) (int, string) {
		t.Helper()
		resp, err := hc.Post(url+"/api/v1/cfssl/authsign", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	csr, _ := pki.NewCSR(key, "x", pki.SANs{})
	signReq := func(tok string, csrDER []byte) []byte {
		csrPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
		sr, _ := json.Marshal(map[string]string{"certificate_request": csrPEM, "profile": "client"})
		body, _ := json.Marshal(map[string][]byte{"token": []byte(tok), "request": sr})
		return body
	}
	token := func() string {
		t.Helper()
		data, err := os.ReadFile(strings.TrimPrefix(mintToken(t, host, host, "--ca", "engine"), "file:"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	tok, spent, fresh := token(), token(), token()

	if code, body := post(bytes.Repeat([]byte("A"), 70*1024)); code != 413 || !strings.Contains(body, "larger than") {
		t.Fatalf("oversized: %d %s", code, body)
	}
	if code, body := post([]byte(`{"token": `)); code != 400 || !strings.Contains(body, "malformed JSON") {
		t.Fatalf("malformed: %d %s", code, body)
	}
	forged := append([]byte{}, csr.Raw...)
	forged[len(forged)-2] ^= 0x55
	if code, body := post(signReq(tok, forged)); code != 400 {
		t.Fatalf("forged CSR: %d %s", code, body)
	}
	if code, body := post(signReq(spent, csr.Raw)); code != 200 {
		t.Fatalf("a real token: %d %s", code, body)
	}
	other, _ := pki.GenerateKey(pki.ECDSAP256)
	otherCSR, _ := pki.NewCSR(other, "x", pki.SANs{})
	for i := range 50 {
		// Another key: the same key would get its certificate again.
		if code, body := post(signReq(spent, otherCSR.Raw)); code != 401 {
			t.Fatalf("retry %d of a spent token: %d %s, want 401 (a retry is not a guess)", i+1, code, body)
		}
	}
	if code, body := post(signReq(fresh, otherCSR.Raw)); code != 200 {
		t.Fatalf("a fresh token after 50 retries of a spent one, from the same source: %d %s", code, body)
	}
	prefix := tok[:len("DTLS1-")+64+1]
	var codes []int
	for i := range 50 {
		code, _ := post(signReq(fmt.Sprintf("%s%043d", prefix, i), csr.Raw))
		codes = append(codes, code)
	}
	if codes[0] != 401 || codes[9] != 401 || codes[10] != 429 || codes[49] != 429 {
		t.Fatalf("50 wrong tokens: %v", codes)
	}
	// The real token, from the blocked source, is refused too until the window passes.
	if code, _ := post(signReq(tok, csr.Raw)); code != 429 {
		t.Fatalf("blocked source got %d", code)
	}
	if inv := host.MustTLS("ca", "issued", "ls", "--ca", "engine", "-q"); len(strings.Fields(inv.Stdout)) != 2 {
		t.Fatalf("the inventory should hold the two real tokens' certificates:\n%s", inv.Stdout)
	}
	if !strings.Contains(serve.Output(), "too-many-guesses") {
		t.Fatalf("ca serve did not log the blocking:\n%s", serve.Output())
	}
}
