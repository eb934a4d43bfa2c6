// Command oidcop is the OpenID provider the e2e suite signs in against:
// zitadel/oidc's own provider (pkg/op) with its example storage and login
// pages, run on loopback. What this file adds is only what the example
// lacks: public device clients (no secret, as RFC 8628 allows) whose ID
// tokens carry the user's email, one of them with refresh tokens, a
// groups claim, and an ID token lifetime the test chooses (so that it can
// watch one expire). The protocol code is zitadel's. It is a test tool, a module of its own so that the product
// does not depend on it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// The public device clients: docker-tls signs in as ClientID, which may
// also refresh (offline_access gives a refresh token), or OnceClientID,
// which may not, so that a laptop signed in with it needs the person
// again. OtherClientID is another application of the team, whose ID
// tokens a CA service for docker-tls must refuse.
const (
	ClientID      = "docker-tls"
	OnceClientID  = "docker-tls-once"
	OtherClientID = "another-app"
)

// public reports whether id is one of the public device clients above.
func public(id string) bool {
	return id == ClientID || id == OnceClientID || id == OtherClientID
}

// users are the team: a password each (the e2e suite types it into the
// provider's login page), and groups.
var users = []struct {
	email, password string
	groups          []string
}{
	{"alice@example.com", "alice-pw", []string{"ops", "dev"}},
	{"bob@example.com", "bob-pw", nil},
	{"eve@example.org", "eve-pw", []string{"ops"}},
}

type userStore map[string]*storage.User

func (u userStore) GetUserByID(id string) *storage.User { return u[id] }
func (u userStore) GetUserByUsername(name string) *storage.User {
	for _, x := range u {
		if x.Username == name {
			return x
		}
	}
	return nil
}
func (userStore) ExampleClientID() string { return ClientID }

// publicDevice is the example's device client made public, with the
// user's claims in the ID token, and the refresh token grant if refresh.
type publicDevice struct {
	op.Client
	refresh bool
	idLife  time.Duration
}

func (p publicDevice) IDTokenLifetime() time.Duration { return p.idLife }

func (p publicDevice) GrantTypes() []oidc.GrantType {
	if p.refresh {
		return []oidc.GrantType{oidc.GrantTypeDeviceCode, oidc.GrantTypeRefreshToken}
	}
	return []oidc.GrantType{oidc.GrantTypeDeviceCode}
}

func (publicDevice) AuthMethod() oidc.AuthMethod          { return oidc.AuthMethodNone }
func (publicDevice) ApplicationType() op.ApplicationType  { return op.ApplicationTypeNative }
func (publicDevice) IDTokenUserinfoClaimsAssertion() bool { return true }

type teamStorage struct {
	*storage.Storage
	groups map[string][]string
	idLife time.Duration
}

func (s *teamStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil || !public(id) {
		return c, err
	}
	return publicDevice{Client: c, refresh: id == ClientID, idLife: s.idLife}, nil
}

func (s *teamStorage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	if public(id) {
		return nil // public: no secret to check
	}
	return s.Storage.AuthorizeClientIDSecret(ctx, id, secret)
}

// TokenRequestByRefreshToken mends a gap of the example storage: it
// records no client on refresh tokens the device flow made (its
// getInfoFromRequest knows only the code and refresh requests), so the
// provider would refuse each refresh (invalid_grant: another client).
// The token's audience is its client.
func (s *teamStorage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	r, err := s.Storage.TokenRequestByRefreshToken(ctx, token)
	if err != nil || r.GetClientID() != "" || len(r.GetAudience()) == 0 {
		return r, err
	}
	return deviceRefresh{RefreshTokenRequest: r, client: r.GetAudience()[0]}, nil
}

type deviceRefresh struct {
	op.RefreshTokenRequest
	client string
}

func (d deviceRefresh) GetClientID() string { return d.client }

// SetUserinfoFromRequest is where the ID token's user claims are made:
// the example's, and the groups.
func (s *teamStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, token op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, token, scopes); err != nil {
		return err
	}
	if g := s.groups[token.GetSubject()]; len(g) > 0 {
		info.AppendClaims("groups", g)
	}
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	idLife := flag.Duration("id-token-lifetime", time.Hour, "how long the ID tokens of the public device clients are valid")
	flag.Parse()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	issuer := "http://" + l.Addr().String()
	us := userStore{}
	groups := map[string][]string{}
	for _, u := range users {
		// The example's device login names the user by username: the ID
		// is the email too.
		us[u.email] = &storage.User{ID: u.email, Username: u.email, Password: u.password, Email: u.email, EmailVerified: true, PreferredLanguage: language.English}
		groups[u.email] = u.groups
	}
	clients := map[string]*storage.Client{}
	for _, id := range []string{ClientID, OnceClientID, OtherClientID} {
		clients[id] = storage.DeviceClient(id, "")
	}
	st := &teamStorage{Storage: storage.NewStorageWithClients(us, clients), groups: groups, idLife: *idLife}
	router := exampleop.SetupServer(issuer, st, slog.New(slog.NewTextHandler(os.Stderr, nil)), false)
	// The e2e suite waits for this line.
	fmt.Printf("issuer %s\n", issuer)
	log.Fatal(http.Serve(l, router))
}
