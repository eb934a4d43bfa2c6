package remoteca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/docker-tls/docker-tls/pki"
)

// fakeProvider is an OpenID provider reduced to what verification reads:
// discovery and the keys. It signs ID tokens with claims a test chooses.
// Unit tests only: the e2e suite signs in against a real provider.
type fakeProvider struct {
	srv *httptest.Server
	key *ecdsa.PrivateKey
	// keysServed counts fetches of the JWKS.
	keysServed atomic.Int64
}

func newFakeProvider(t testing.TB) *fakeProvider {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeProvider{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": p.srv.URL, "jwks_uri": p.srv.URL + "/keys",
			"authorization_endpoint": p.srv.URL + "/auth", "token_endpoint": p.srv.URL + "/token", "id_token_signing_alg_values_supported": []string{"ES256"}})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		p.keysServed.Add(1)
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// token is an ID token for the client with claims over the defaults
// (issued now, valid an hour); key signs it (nil: the provider's).
func (p *fakeProvider) token(t testing.TB, claims map[string]any, key *ecdsa.PrivateKey) string {
	c := map[string]any{"iss": p.srv.URL, "aud": "docker-tls", "sub": "u1", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	if key == nil {
		key = p.key
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1").WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(c)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestOIDCVerify(t *testing.T) {
	p := newFakeProvider(t)
	o := &OIDC{Issuer: p.srv.URL, ClientID: "docker-tls", AllowedDomains: []string{"example.com"}}
	if err := o.Check(); err != nil {
		t.Fatal(err)
	}
	if err := o.Connect(context.Background(), p.srv.Client()); err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name    string
		claims  map[string]any
		key     *ecdsa.PrivateKey
		user    string
		groups  string
		wantErr string
	}{
		{"user and groups", map[string]any{"email": "alice@example.com", "email_verified": true, "groups": []string{"ops", "dev"}}, nil, "alice@example.com", "ops,dev", ""},
		{"one group as a string", map[string]any{"email": "bob@EXAMPLE.com", "groups": "ops"}, nil, "bob@EXAMPLE.com", "ops", ""},
		{"no groups", map[string]any{"email": "carol@example.com"}, nil, "carol@example.com", "", ""},
		{"another audience", map[string]any{"email": "a@example.com", "aud": "someone-else"}, nil, "", "", "does not verify"},
		{"another issuer", map[string]any{"email": "a@example.com", "iss": "https://login.example.net"}, nil, "", "", "does not verify"},
		{"expired", map[string]any{"email": "a@example.com", "exp": time.Now().Add(-time.Minute).Unix()}, nil, "", "", "the sign-in expired at"},
		{"signed by another key", map[string]any{"email": "a@example.com"}, other, "", "", "does not verify"},
		{"no user claim", map[string]any{"name": "A"}, nil, "", "", `no "email" claim`},
		{"email not verified", map[string]any{"email": "a@example.com", "email_verified": false}, nil, "", "", "has not verified the email"},
		{"another domain", map[string]any{"email": "eve@example.org"}, nil, "", "", "not of a domain this service signs in (example.com)"},
		{"groups not names", map[string]any{"email": "a@example.com", "groups": []any{1, 2}}, nil, "", "", "not names"},
		{"a group given twice", map[string]any{"email": "a@example.com", "groups": []string{"ops", "ops"}}, nil, "", "", `the "groups" claim: the group "ops" is given twice`},
	}
	for _, tc := range tests {
		who, err := o.Verify(context.Background(), p.token(t, tc.claims, tc.key))
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case who.User != tc.user || strings.Join(who.Groups, ",") != tc.groups:
			t.Errorf("%s: %+v", tc.name, who)
		}
	}
}

func TestOIDCCheck(t *testing.T) {
	for _, tc := range []struct {
		o    OIDC
		want string
	}{
		{OIDC{Issuer: "https://id.example.com", ClientID: "c"}, ""},
		{OIDC{Issuer: "http://127.0.0.1:5556", ClientID: "c"}, ""},
		{OIDC{Issuer: "http://id.example.com", ClientID: "c"}, "reached over https"},
		{OIDC{Issuer: "id.example.com", ClientID: "c"}, "give the provider's issuer URL"},
		{OIDC{Issuer: "https://id.example.com"}, "needs --oidc-client-id"},
		{OIDC{Issuer: "https://id.example.com", ClientID: "c", AllowedDomains: []string{"@example.com"}}, "give a domain"},
		{OIDC{Issuer: "https://id.example.com", ClientID: "c", MaxLifetime: time.Second}, "give at least"},
	} {
		err := tc.o.Check()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}

// TestSignIn: through HTTPS, a signed-in user gets a client certificate
// named after the user claim, with the groups claim as groups and the
// sign-in lifetime, recorded in the inventory; the info endpoint says
// the service takes sign-ins; a revoked name and a bad token get nothing;
// a service without OIDC says how to enroll instead.
func TestSignIn(t *testing.T) {
	p := newFakeProvider(t)
	f := newFixture(t)
	ctx := context.Background()
	post := func(body SignInRequest) rawResp {
		data, _ := json.Marshal(body)
		hc := f.client.httpClient(pki.ClientTLS(f.ca.Cert, "127.0.0.1", nil))
		resp, err := hc.Post(f.url+OIDCPath, "application/json", strings.NewReader(string(data)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ = io.ReadAll(resp.Body)
		return rawResp{code: resp.StatusCode, body: string(data)}
	}
	csr := EncodeCSR(mustCSR(t))
	if r := post(SignInRequest{CertificateRequest: csr, IDToken: p.token(t, map[string]any{"email": "a@example.com"}, nil)}); r.code != 404 || !strings.Contains(r.body, "does not take sign-ins") {
		t.Fatalf("without OIDC: %d %s", r.code, r.body)
	}
	f.srv.OIDC = &OIDC{Issuer: p.srv.URL, ClientID: "docker-tls", MaxLifetime: 8 * time.Hour}
	if err := f.srv.OIDC.Connect(ctx, p.srv.Client()); err != nil {
		t.Fatal(err)
	}
	var info struct{ Result InfoResult }
	hc := f.client.httpClient(pki.ClientTLS(f.ca.Cert, "127.0.0.1", nil))
	resp, err := hc.Post(f.url+"/api/v1/cfssl/info", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if info.Result.OIDC == nil || info.Result.OIDC.Issuer != p.srv.URL || info.Result.OIDC.ClientID != "docker-tls" {
		t.Errorf("info does not say the service takes sign-ins: %+v", info.Result)
	}

	aliceToken := p.token(t, map[string]any{"email": "alice@example.com", "groups": []string{"ops"}}, nil)
	r := post(SignInRequest{CertificateRequest: csr, IDToken: aliceToken})
	if r.code != 200 {
		t.Fatalf("sign-in: %d %s", r.code, r.body)
	}
	// The same sign-in again: with the same key (a retry), the same
	// certificate; with another key, refused.
	if again := post(SignInRequest{CertificateRequest: csr, IDToken: aliceToken}); again.code != 200 || again.body != r.body {
		t.Errorf("a retried sign-in: %d %s", again.code, again.body)
	}
	if other := post(SignInRequest{CertificateRequest: EncodeCSR(mustCSR(t)), IDToken: aliceToken}); other.code != 403 || !strings.Contains(other.body, "already used for a certificate of another key") {
		t.Errorf("a sign-in used again with another key: %d %s", other.code, other.body)
	}
	var res struct{ Result SignResult }
	if err := json.Unmarshal([]byte(r.body), &res); err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertificate([]byte(res.Result.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "alice@example.com" || strings.Join(pki.GroupsOf(cert), ",") != "ops" || cert.NotAfter.Sub(cert.NotBefore)-pki.Backdate != 8*time.Hour {
		t.Errorf("signed-in certificate: %v, %v to %v", cert.Subject, cert.NotBefore, cert.NotAfter)
	}
	if err := pki.VerifyLeaf(cert, f.ca.Cert, pki.ClientProfile, time.Now()); err != nil {
		t.Error(err)
	}
	inv, _ := f.srv.DB.Issued(ctx)
	if len(inv) != 1 || inv[0].CN != "alice@example.com" || inv[0].Token != "oidc" {
		t.Errorf("inventory: %+v", inv)
	}
	if !strings.Contains(f.logBuf.String(), `signed-in serial=`) || !strings.Contains(f.logBuf.String(), `signed-in-again serial=`) {
		t.Errorf("log:\n%s", f.logBuf.String())
	}
	if _, err := f.srv.DB.RevokeName(ctx, "mallory@example.com", "left the team", time.Now()); err != nil {
		t.Fatal(err)
	}
	if r := post(SignInRequest{CertificateRequest: csr, IDToken: p.token(t, map[string]any{"email": "mallory@example.com"}, nil)}); r.code != 403 || !strings.Contains(r.body, "revoked") {
		t.Errorf("a revoked name: %d %s", r.code, r.body)
	}
	if r := post(SignInRequest{CertificateRequest: csr, IDToken: "not.a.token"}); r.code != 401 {
		t.Errorf("a bad token: %d %s", r.code, r.body)
	}
	if inv, _ := f.srv.DB.Issued(ctx); len(inv) != 1 {
		t.Errorf("refused sign-ins were recorded: %d", len(inv))
	}
}
