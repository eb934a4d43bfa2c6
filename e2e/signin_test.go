package e2e

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
	"github.com/docker-tls/docker-tls/signin"
	jose "github.com/go-jose/go-jose/v4"
)

// opBinary builds the e2e suite's OpenID provider (e2e/oidcop: zitadel's
// pkg/op with its example storage and login pages, a module of its own),
// once per run.
var opBinary = sync.OnceValues(func() (string, error) {
	dir, err := filepath.Abs("oidcop")
	if err != nil {
		return "", err
	}
	out := filepath.Join(filepath.Dir(pluginBinary), "oidcop")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the test OpenID provider (e2e/oidcop): %v\n%s", err, b)
	}
	return out, nil
})

// startProvider runs the test OpenID provider on loopback and returns its
// issuer URL.
func startProvider(t *testing.T, e *Env, flags ...string) string {
	t.Helper()
	bin, err := opBinary()
	if err != nil {
		t.Fatal(err)
	}
	p := e.Start(bin, append([]string{"-listen", "127.0.0.1:0"}, flags...)...)
	p.WaitFor("issuer http://")
	return strings.Fields(strings.SplitN(p.Output(), "issuer ", 2)[1])[0]
}

// approve does what the person does in the browser: opens the provider's
// device page, signs in with user and password and allows docker-tls.
func approve(t *testing.T, issuer, code, user, password string) {
	t.Helper()
	if err := approveCode(issuer, code, user, password); err != nil {
		t.Fatal(err)
	}
}

// approveCode is approve for any goroutine: it returns what failed.
func approveCode(issuer, code, user, password string) error {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := hc.PostForm(issuer+"/device/login", url.Values{"user_code": {code}, "username": {user}, "password": {password}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	resp, err = hc.PostForm(issuer+"/device/confirm", url.Values{"action": {"allowed"}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the provider's confirm page answered %s", resp.Status)
	}
	return nil
}

// TestSignInWithIdentityProvider: a CA service run with --oidc-issuer
// against a real OpenID provider (zitadel's, on loopback); a laptop runs
// docker tls enroll with the CA's fingerprint and no token, is shown the
// provider's page and a code, and once the person signs in there ends
// with a working context whose certificate names the user and carries
// the provider's groups, for the sign-in lifetime. A user of a domain the
// service does not allow gets one sentence, and no context. Once a
// sign-in's certificate has expired, ls, verify and renew --all say a new
// sign-in is needed, and renew NAME signs the person in again.
func TestSignInWithIdentityProvider(t *testing.T) {
	t.Parallel() // waits on the provider's polling interval
	host, laptop, d, _ := remoteCAEngine(t)
	issuer := startProvider(t, host)
	url, serve := caServe(t, host, "engine", "--oidc-issuer", issuer, "--oidc-client-id", "docker-tls", "--oidc-allowed-domain", "example.com", "--max-lifetime", "oidc=8h")
	serve.WaitFor("Sign-in: ID tokens of " + issuer)
	fp := regexp.MustCompile(`SHA-256 ([0-9A-F:]{95})`).FindStringSubmatch(serve.Output())
	if fp == nil {
		t.Fatalf("ca serve did not print the CA's fingerprint:\n%s", serve.Output())
	}
	codeRE := regexp.MustCompile(`enter the code ([A-Z0-9-]+)`)
	// signInAs waits for p to show the code, and signs user in with it.
	signInAs := func(p *Proc, user, password string) {
		t.Helper()
		p.WaitFor("Waiting for the sign-in")
		m := codeRE.FindStringSubmatch(p.Output())
		if m == nil {
			t.Fatalf("no code shown:\n%s", p.Output())
		}
		if !strings.Contains(p.Output(), "open "+issuer+"/device") {
			t.Errorf("it did not say where to sign in:\n%s", p.Output())
		}
		approve(t, issuer, m[1], user, password)
	}
	signIn := func(name, user, password string, service ...string) *Proc {
		t.Helper()
		at := url
		if len(service) > 0 {
			at = service[0]
		}
		p := laptop.Start("docker", "tls", "enroll", name, "--ca-url", at, "--ca-fingerprint", "sha256:"+fp[1], "--host", d.Host, "--no-browser")
		signInAs(p, user, password)
		return p
	}
	start := time.Now()
	p := signIn("team", "alice@example.com", "alice-pw")
	if code := p.Wait(30 * time.Second); code != 0 {
		t.Fatalf("enroll after the sign-in: exit %d\n%s", code, p.Output())
	}
	t.Logf("sign-in to working context: %s (the provider's polling interval is 5 s)", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(p.Output(), "Verified") {
		t.Errorf("enroll did not verify the context:\n%s", p.Output())
	}
	requireOK(t, laptop.Docker("--context", "team", "version", "--format", "{{.Server.Version}}"))
	if ls := laptop.MustTLS("ls", "--format", "{{.Name}} {{.Groups}}"); !strings.Contains(ls.Stdout, "team dev,ops") {
		t.Errorf("the signed-in context's groups:\n%s", ls.Stdout)
	}
	issued := host.MustTLS("ca", "issued", "ls", "--ca", "engine", "--format", "{{.CN}} {{.Groups}} {{.Token}}").Stdout
	if !strings.Contains(issued, "alice@example.com dev,ops oidc") {
		t.Errorf("the inventory does not hold the sign-in:\n%s", issued)
	}
	cert := contextCert(t, laptop, "team")
	if life := cert.NotAfter.Sub(cert.NotBefore); life < 8*time.Hour || life > 8*time.Hour+10*time.Minute {
		t.Errorf("a sign-in's certificate lives %s, want 8h (--max-lifetime oidc=8h)", life)
	}

	p = signIn("outsider", "eve@example.org", "eve-pw")
	if code := p.Wait(30 * time.Second); code == 0 || !strings.Contains(p.Output(), "eve@example.org is not of a domain this service signs in (example.com)") {
		t.Errorf("a user of another domain: exit %d\n%s", code, p.Output())
	}
	if ls := laptop.MustTLS("ls", "-q"); strings.Contains(ls.Stdout, "outsider") {
		t.Errorf("a refused sign-in left a context:\n%s", ls.Stdout)
	}

	// A sign-in whose engine does not answer leaves nothing, and says to
	// sign in again (no token was spent).
	nowhere := laptop.Start("docker", "tls", "enroll", "nowhere", "--ca-url", url, "--ca-fingerprint", "sha256:"+fp[1], "--host", "tcp://127.0.0.1:9", "--no-browser")
	signInAs(nowhere, "alice@example.com", "alice-pw")
	if code := nowhere.Wait(60 * time.Second); code == 0 || !strings.Contains(nowhere.Output(), "so the context and its key were removed: fix the cause and enroll again (a new sign-in), or use --no-verify") {
		t.Errorf("a sign-in to an engine that does not answer: exit %d\n%s", code, nowhere.Output())
	}

	// Expired, signed in with a client that gets no refresh token: ls,
	// verify and renew --all say a new sign-in is needed; renew NAME
	// starts it, and the context works again.
	shortURL, _ := caServe(t, host, "engine", "--oidc-issuer", issuer, "--oidc-client-id", "docker-tls-once", "--max-lifetime", "oidc=15s")
	if code := signIn("brief", "bob@example.com", "bob-pw", shortURL).Wait(30 * time.Second); code != 0 {
		t.Fatal("enroll of a 15 s sign-in failed")
	}
	laptop.waitExpired("brief", 40*time.Second)
	if ls := laptop.MustTLS("ls", "--format", "{{.Name}}: {{.Expires}}").Stdout; !strings.Contains(ls, "brief: EXPIRED") || !strings.Contains(ls, "(sign in again: docker tls renew brief)") {
		t.Errorf("ls of an expired sign-in:\n%s", ls)
	}
	if v := laptop.TLS("verify", "brief"); v.Code == 0 || !strings.Contains(v.Stdout, "fix: docker tls renew brief (it signs you in again with the team's identity provider)") {
		t.Errorf("verify of an expired sign-in: %s", v)
	}
	requireFail(t, laptop.TLS("renew", "--all", "--within", "1d"), "brief:", "a new sign-in is needed: docker tls renew brief")
	// The agent renews only valid certificates; its status says so.
	laptop.MustTLS("agent")
	t.Cleanup(func() { laptop.TLS("agent", "stop") })
	if st := laptop.MustTLS("agent", "status").Stdout; !regexp.MustCompile(`(?m)^  brief +EXPIRED [^ ]+: a new sign-in is needed: docker tls renew brief$`).MatchString(st) {
		t.Errorf("agent status of an expired sign-in:\n%s", st)
	}
	laptop.MustTLS("agent", "stop")
	again := laptop.Start("docker", "tls", "renew", "brief")
	signInAs(again, "bob@example.com", "bob-pw")
	if code := again.Wait(30 * time.Second); code != 0 || !strings.Contains(again.Output(), "brief: renewed") {
		t.Fatalf("renew of an expired sign-in: exit %d\n%s", code, again.Output())
	}
	requireOK(t, laptop.Docker("--context", "brief", "version", "--format", "{{.Server.Version}}"))

	// Expired, signed in with a client that gets a refresh token (kept
	// with the key): renew --all signs in again without the person.
	refreshURL, refreshServe := caServe(t, host, "engine", "--oidc-issuer", issuer, "--oidc-client-id", "docker-tls", "--max-lifetime", "oidc=15s")
	if code := signIn("kept", "alice@example.com", "alice-pw", refreshURL).Wait(30 * time.Second); code != 0 {
		t.Fatal("enroll of a 15 s sign-in with a refresh token failed")
	}
	// The provider's refresh token is in the key's entry of the key store,
	// nowhere else, and never in any output from here on.
	refreshToken := func() string {
		t.Helper()
		f := strings.Fields(laptop.MustTLS("ls", "--format", `{{if eq .Name "kept"}}{{.KeyStore}} {{.KeyID}}{{end}}`).Stdout)
		if len(f) != 2 {
			t.Fatalf("ls of kept: %v", f)
		}
		ks, err := keystore.Stores{Dir: filepath.Join(laptop.ConfigDir, "tls", "keys")}.Open(f[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := ks.Token(f[1])
		if err != nil || tok == "" {
			t.Fatalf("no refresh token kept with the key of kept (%s): %v", f[0], err)
		}
		laptop.Secrets = append(laptop.Secrets, tok)
		if strings.Contains(snapshot(t, filepath.Join(laptop.ConfigDir, "contexts")), tok) {
			t.Fatal("the refresh token is in the context's files")
		}
		return tok
	}
	token1 := refreshToken()

	// While valid, in its last third, it renews over mutual TLS, as the
	// agent does: no sign-in, no refresh.
	signedIn := contextCert(t, laptop, "kept")
	time.Sleep(time.Until(signedIn.NotAfter.Add(-4 * time.Second)))
	if r := laptop.TLS("renew", "kept"); !strings.Contains(r.Stdout, "kept: renewed") {
		t.Fatalf("renew of a valid sign-in: %s", r)
	}
	first := contextCert(t, laptop, "kept")
	if first.SerialNumber.Cmp(signedIn.SerialNumber) == 0 || !strings.Contains(refreshServe.Output(), "renewed serial=") || strings.Count(refreshServe.Output(), "signed-in serial=") != 1 {
		t.Errorf("a valid sign-in's renewal was not by mutual TLS:\n%s", refreshServe.Output())
	}
	laptop.waitExpired("kept", 40*time.Second)
	r := laptop.TLS("renew", "--all", "--within", "1d")
	if !strings.Contains(r.Stdout, "kept: renewed") {
		t.Fatalf("renew --all of an expired sign-in with a refresh token: %s", r)
	}
	if strings.Contains(r.Stderr, "sign in again with the team's identity provider") || strings.Contains(r.Stderr, "enter the code") {
		t.Errorf("the refresh asked for the person: %s", r)
	}
	requireOK(t, laptop.Docker("--context", "kept", "version", "--format", "{{.Server.Version}}"))
	if next := contextCert(t, laptop, "kept"); next.SerialNumber.Cmp(first.SerialNumber) == 0 || next.Subject.CommonName != "alice@example.com" || strings.Count(refreshServe.Output(), "signed-in serial=") != 2 {
		t.Errorf("the renewal after a refresh: %v (was %v)", next.Subject, first.Subject)
	}
	if token2 := refreshToken(); token2 == token1 {
		t.Error("the provider rotated the refresh token, but the old one is kept")
	}
	// The rotated token works again: a second expiry, a second refresh.
	laptop.waitExpired("kept", 40*time.Second)
	if r := laptop.TLS("renew", "kept"); !strings.Contains(r.Stdout, "kept: renewed") || strings.Contains(r.Stderr, "enter the code") {
		t.Fatalf("a second refresh (the rotated token): %s", r)
	}
}

// idToken signs user in at the provider at issuer as clientID, through the
// product's own device flow, with the test as the person; it returns the
// ID token the provider gave.
func idToken(ctx context.Context, issuer, clientID, user, password string) (string, error) {
	var approved error
	res, err := signin.Device(ctx, issuer, clientID, &http.Client{Timeout: 10 * time.Second}, func(c signin.Code) {
		approved = approveCode(issuer, c.UserCode, user, password)
	})
	if err = cmp.Or(approved, err); err != nil {
		return "", fmt.Errorf("sign %s in at %s as %s: %w", user, issuer, clientID, err)
	}
	return res.IDToken, nil
}

// forgeIDToken signs raw's header and claims again with an RSA key the
// provider never published, under the key ID of the provider's own key:
// a token that names a real key of the JWKS but was not signed by it.
func forgeIDToken(t *testing.T, raw string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("the provider's ID token is not a compact JWS: %d parts", len(parts))
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Alg, Kid string }
	if err := json.Unmarshal(header, &h); err != nil || !strings.HasPrefix(h.Alg, "RS") {
		t.Fatalf("the provider's ID token header %s (%v): the forgery below signs with RSA", header, err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(h.Alg), Key: jose.JSONWebKey{Key: key, KeyID: h.Kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return forged
}

// idTokenExpiry reads the exp claim of raw (unverified: the test's own
// token, to know how long to wait).
func idTokenExpiry(t *testing.T, raw string) time.Time {
	t.Helper()
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Exp int64 }
	if err := json.Unmarshal(payload, &c); err != nil || c.Exp == 0 {
		t.Fatalf("the ID token's exp claim: %s (%v)", payload, err)
	}
	return time.Unix(c.Exp, 0)
}

// TestSignInRefusals: the CA service issues nothing for an ID token the
// real provider made for another application (audience), one from
// another provider (issuer), one re-signed by a key outside the
// provider's JWKS, one that has expired, and a valid one sent again with
// another key; the same token with the same key gets the same certificate
// back. Each refusal is one sentence, and the inventory holds one
// certificate at the end. The tokens are the provider's own, got through
// its device flow with the test as the person.
func TestSignInRefusals(t *testing.T) {
	need(t, "docker")
	t.Parallel() // waits on the provider's polling interval, and for a token to expire
	host := NewEnv(t)
	host.MustTLS("ca", "init", "team")
	const life = 15 * time.Second
	issuer := startProvider(t, host, "-id-token-lifetime", life.String())
	otherIssuer := startProvider(t, host)
	url, serve := caServe(t, host, "team", "--oidc-issuer", issuer, "--oidc-client-id", "docker-tls", "--oidc-allowed-domain", "example.com")
	serve.WaitFor("Sign-in: ID tokens of " + issuer)
	fp, err := remoteca.NormalizeFingerprint(strings.TrimSpace(host.MustTLS("ca", "inspect", "team", "--format", "{{.Fingerprint}}").Stdout))
	if err != nil {
		t.Fatal(err)
	}

	// Three sign-ins at once, each one polling interval of the provider.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wanted := []struct{ issuer, client string }{{issuer, "docker-tls"}, {issuer, "another-app"}, {otherIssuer, "docker-tls"}}
	tokens := make([]string, len(wanted))
	errs := make([]error, len(wanted))
	var wg sync.WaitGroup
	for i, w := range wanted {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tokens[i], errs[i] = idToken(ctx, w.issuer, w.client, "alice@example.com", "alice-pw")
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	valid, otherApp, otherProvider := tokens[0], tokens[1], tokens[2]
	forged := forgeIDToken(t, valid)
	host.Secrets = append(host.Secrets, valid, otherApp, otherProvider, forged)

	c := &remoteca.Client{URL: url, Fingerprint: fp, Timeout: 10 * time.Second, Attempts: 1}
	ca, err := c.FetchCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.SignIn(ctx, ca, valid, key)
	if err != nil {
		t.Fatalf("a valid sign-in: %v", err)
	}
	if first.Subject.CommonName != "alice@example.com" || !slices.Equal(slices.Sorted(slices.Values(first.Subject.Organization)), []string{"dev", "ops"}) {
		t.Errorf("the signed-in certificate names %s", first.Subject)
	}
	again, err := c.SignIn(ctx, ca, valid, key)
	if err != nil || again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("the same ID token with the same key (a retry): %v, serial %x, want %x", err, again.SerialNumber, first.SerialNumber)
	}
	for _, tc := range []struct {
		name, token string
		key         crypto.Signer
		want        string
	}{
		{"the same ID token with another key", valid, otherKey, "this sign-in was already used for a certificate of another key: sign in again"},
		{"an ID token for another application", otherApp, otherKey, `expected audience "docker-tls"`},
		// go-oidc checks the signature before the claims: another
		// provider's token fails on its key, before its issuer.
		{"an ID token of another provider", otherProvider, otherKey, "the ID token does not verify against " + issuer},
		{"an ID token signed by a key outside the provider's JWKS", forged, otherKey, "the ID token does not verify against " + issuer + " for client docker-tls: failed to verify signature"},
	} {
		if _, err := c.SignIn(ctx, ca, tc.token, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) || strings.Count(err.Error(), "\n") > 0 {
			t.Errorf("%s: %v, want one line with %q", tc.name, err, tc.want)
		}
	}

	// The valid token, once expired, is refused even with its own key.
	exp := idTokenExpiry(t, valid)
	if wait := time.Until(exp) + 1500*time.Millisecond; wait > 0 && wait < 2*life {
		time.Sleep(wait)
	} else if wait >= 2*life {
		t.Fatalf("the provider's ID token expires at %s, not within %s (-id-token-lifetime)", exp, life)
	}
	if _, err := c.SignIn(ctx, ca, valid, key); err == nil || !strings.Contains(err.Error(), "the sign-in expired at") {
		t.Errorf("an expired ID token: %v", err)
	}

	issued := strings.Fields(host.MustTLS("ca", "issued", "ls", "--ca", "team", "--format", "{{.Serial}} {{.CN}}").Stdout)
	if want := []string{fmt.Sprintf("%x", first.SerialNumber), "alice@example.com"}; !slices.Equal(issued, want) {
		t.Errorf("the inventory after the refusals holds %q, want only %q", issued, want)
	}
	if n := strings.Count(serve.Output(), "refused source="); n != 5 {
		t.Errorf("the service logged %d refusals, want 5:\n%s", n, serve.Output())
	}
}
