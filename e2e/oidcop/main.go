// Command oidcop is the OpenID provider the e2e suite signs in against:
// zitadel/oidc's own provider (pkg/op) with its example storage and login
// pages, run on loopback. What this file adds is only what the example
// lacks: a public device client (no secret, as RFC 8628 allows) whose ID
// tokens carry the user's email, and a groups claim. The protocol code is
// zitadel's. It is a test tool, a module of its own so that the product
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

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// ClientID is the public device client docker-tls signs in as.
const ClientID = "docker-tls"

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
// user's claims in the ID token.
type publicDevice struct{ op.Client }

func (publicDevice) AuthMethod() oidc.AuthMethod          { return oidc.AuthMethodNone }
func (publicDevice) ApplicationType() op.ApplicationType  { return op.ApplicationTypeNative }
func (publicDevice) IDTokenUserinfoClaimsAssertion() bool { return true }

type teamStorage struct {
	*storage.Storage
	groups map[string][]string
}

func (s *teamStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil || id != ClientID {
		return c, err
	}
	return publicDevice{c}, nil
}

func (s *teamStorage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	if id == ClientID {
		return nil // public: no secret to check
	}
	return s.Storage.AuthorizeClientIDSecret(ctx, id, secret)
}

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
	st := &teamStorage{Storage: storage.NewStorageWithClients(us, map[string]*storage.Client{ClientID: storage.DeviceClient(ClientID, "")}), groups: groups}
	router := exampleop.SetupServer(issuer, st, slog.New(slog.NewTextHandler(os.Stderr, nil)), false)
	// The e2e suite waits for this line.
	fmt.Printf("issuer %s\n", issuer)
	log.Fatal(http.Serve(l, router))
}
