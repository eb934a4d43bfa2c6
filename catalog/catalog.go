// Package catalog owns turning a CA service's catalog of engines into
// contexts on a laptop (docker tls enroll --engines): one context per
// engine where the signed-in identity has a role, named after the engine
// (with a prefix), all holding the one client certificate the service
// signed for this laptop, since every catalog engine trusts the service's
// CA.
//
// The laptop's other contexts are not the catalog's to change: a context
// is replaced only when it was made from the same catalog (its
// x-docker-tls "catalog" field names the service), which the context
// store decides under its lock. A clash is skipped and named; an engine
// that left the catalog keeps its context, and is named so that its owner
// removes it.
package catalog

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/policy"
	"github.com/docker-tls/docker-tls/remoteca"
)

// Outcomes of one engine.
const (
	Created = "created"
	Updated = "updated"
	Skipped = "skipped"
)

// Result is what became of one catalog engine.
type Result struct {
	Engine  string      `json:"engine"`
	Context string      `json:"context"`
	Host    string      `json:"host"`
	Role    policy.Role `json:"role"`
	Outcome string      `json:"outcome"`
	// Note says why an engine was skipped, or what an update changed.
	Note string `json:"note,omitempty"`
}

// Sync is one run of enroll --engines.
type Sync struct {
	// URL is the CA service; the contexts record it as their catalog.
	URL string
	// Prefix goes before each engine's name to name its context.
	Prefix string
	// Cert and Key are the client certificate the service signed, for
	// every context.
	Cert *x509.Certificate
	Key  crypto.Signer
	// KeyStore is where each context's copy of the key goes.
	KeyStore string
	// SignIn says the certificate came from a sign-in.
	SignIn bool
}

// CheckPrefix refuses a prefix that cannot begin a context name.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := contexts.ValidateName(prefix + "x"); err != nil {
		return fmt.Errorf("--prefix %q cannot begin a context name: use letters, digits and '_', '.', '+', '-', starting with a letter or digit", prefix)
	}
	return nil
}

// Apply makes or updates a context for each of engines in store, and
// returns what became of each, by engine name, and the contexts made from
// this catalog earlier whose engine it no longer lists.
func (s *Sync) Apply(store *contexts.Store, engines []remoteca.CatalogEngine, now time.Time) ([]Result, []string, error) {
	list, _, err := store.List()
	if err != nil {
		return nil, nil, err
	}
	before := map[string]*contexts.Context{}
	for _, c := range list {
		before[c.Name] = c
	}
	var results []Result
	listed := map[string]bool{}
	for _, e := range engines {
		r := Result{Engine: e.Name, Context: s.Prefix + e.Name, Host: e.Host, Role: e.Role}
		listed[r.Context] = true
		r.Outcome, r.Note = s.one(store, e, r.Context, before[r.Context], now)
		results = append(results, r)
	}
	slices.SortFunc(results, func(a, b Result) int { return strings.Compare(a.Context, b.Context) })
	var gone []string
	for _, c := range list {
		if c.Managed() && c.TLS.Catalog == s.URL && !listed[c.Name] {
			gone = append(gone, c.Name)
		}
	}
	slices.Sort(gone)
	return results, gone, nil
}

// one makes or updates the context of engine e.
func (s *Sync) one(store *contexts.Store, e remoteca.CatalogEngine, name string, was *contexts.Context, now time.Time) (outcome, note string) {
	if err := contexts.ValidateName(name); err != nil {
		return Skipped, fmt.Sprintf("%q cannot name a context", name)
	}
	ca, err := e.CACert()
	if err != nil {
		return Skipped, err.Error()
	}
	// The engine verifies clients with its CA: a certificate of another
	// CA would be a context that cannot connect.
	if err := pki.VerifyLeaf(s.Cert, ca, pki.ClientProfile, now); err != nil {
		return Skipped, "its CA is not the one that signed this laptop's certificate"
	}
	_, _, err = store.Create(contexts.CreateOptions{
		Name: name, Description: "from the catalog of " + s.URL, Host: e.Host,
		Identity: contexts.Identity{CA: ca, Cert: s.Cert, Key: s.Key}, KeyStore: s.KeyStore,
		CAURL: s.URL, SignIn: s.SignIn, Catalog: s.URL, Force: true, FromCatalogOnly: true,
	})
	switch {
	case errors.Is(err, contexts.ErrNotFromCatalog):
		return Skipped, "a context of that name exists that was not made from this catalog: it is left as it is"
	case err != nil:
		return Skipped, err.Error()
	case was == nil || !was.Managed() || was.TLS.Catalog != s.URL:
		return Created, ""
	case was.Host != e.Host:
		return Updated, "endpoint was " + was.Host
	}
	return Updated, "new certificate"
}
