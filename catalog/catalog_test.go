package catalog

import (
	"crypto"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/internal/journal"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/policy"
	"github.com/docker-tls/docker-tls/remoteca"
)

const service = "https://ca.example.com:2377"

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	ca, err := pki.NewCA(key, pki.CAOptions{CommonName: "team CA"})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func signedIn(t *testing.T, ca *pki.CA) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "alice@example.com", Groups: []string{"dev"}, PublicKey: key.Public(), Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func engineOf(ca *pki.CA, name, host string) remoteca.CatalogEngine {
	return remoteca.CatalogEngine{Name: name, Host: host, CA: string(pki.EncodeCertificate(ca.Cert)), Role: policy.Viewer}
}

// outcomes is "context=outcome(note)" per result.
func outcomes(rs []Result) string {
	var out []string
	for _, r := range rs {
		s := r.Context + "=" + r.Outcome
		if r.Note != "" {
			s += "(" + r.Note + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// TestSync: a first run makes a context per engine, all with the one
// certificate and its key, marked as from the catalog; a later run
// updates those (a new certificate, a changed endpoint), adds new
// engines, skips a name taken by a context it did not make and leaves that
// context as it was, and names the contexts whose engine left the
// catalog without removing them. An engine of another CA is skipped.
func TestSync(t *testing.T) {
	dir := t.TempDir()
	keys := keystore.Stores{Dir: filepath.Join(dir, "tls", "keys")}
	store := contexts.New(dir, keys, journal.New(filepath.Join(dir, "tls"), keys.TempDir()))
	ca := newCA(t)
	cert, key := signedIn(t, ca)
	s := Sync{URL: service, Prefix: "team-", Cert: cert, Key: key, KeyStore: keystore.KindFile, SignIn: true}
	now := time.Now()

	// Someone's own context, with a name the catalog will want later.
	other, otherKey := signedIn(t, ca)
	if _, _, err := store.Create(contexts.CreateOptions{Name: "team-db", Host: "tcp://10.9.9.9:2376", Identity: contexts.Identity{CA: ca.Cert, Cert: other, Key: otherKey}, KeyStore: keystore.KindFile, CAName: "mine"}); err != nil {
		t.Fatal(err)
	}

	res, gone, err := s.Apply(store, []remoteca.CatalogEngine{engineOf(ca, "build", "tcp://10.0.0.1:2376"), engineOf(ca, "web", "tcp://10.0.0.2:2376"), engineOf(newCA(t), "alien", "tcp://10.0.0.3:2376")}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := outcomes(res), "team-alien=skipped(its CA is not the one that signed this laptop's certificate) team-build=created team-web=created"; got != want || len(gone) != 0 {
		t.Fatalf("first run: %s, gone %v\nwant %s", got, gone, want)
	}
	for _, name := range []string{"team-build", "team-web"} {
		c, err := store.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Managed() || c.TLS.Catalog != service || c.TLS.CAURL != service || !c.TLS.SignIn || c.TLS.Subject != cert.Subject.String() || !c.HasFile(contexts.KeyFile) {
			t.Errorf("%s: %+v", name, c.TLS)
		}
		if err := store.CheckKeyFile(c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := store.Get("team-alien"); err == nil {
		t.Error("an engine of another CA got a context")
	}

	// A later run: a new certificate, web moved, db is new but its name
	// is taken, build left the catalog.
	cert2, key2 := signedIn(t, ca)
	s.Cert, s.Key = cert2, key2
	res, gone, err = s.Apply(store, []remoteca.CatalogEngine{engineOf(ca, "web", "tcp://10.0.0.7:2376"), engineOf(ca, "db", "tcp://10.0.0.8:2376")}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := outcomes(res), "team-db=skipped(a context of that name exists that was not made from this catalog: it is left as it is) team-web=updated(endpoint was tcp://10.0.0.2:2376)"; got != want {
		t.Errorf("second run: %s\nwant %s", got, want)
	}
	if strings.Join(gone, ",") != "team-build" {
		t.Errorf("gone: %v", gone)
	}
	if c, _ := store.Get("team-db"); c == nil || c.Host != "tcp://10.9.9.9:2376" || c.TLS.CA != "mine" || c.TLS.Catalog != "" {
		t.Errorf("the clashing context was changed: %+v", c)
	}
	if c, _ := store.Get("team-web"); c == nil || c.Host != "tcp://10.0.0.7:2376" || c.TLS.Subject != cert2.Subject.String() || c.TLS.KeyID != contexts.KeyID("team-web", cert2) {
		t.Errorf("web was not updated: %+v", c)
	}
	if _, err := store.Get("team-build"); err != nil {
		t.Errorf("a context whose engine left the catalog was removed: %v", err)
	}
	// The old key of the updated context is gone; the others are kept.
	ks, _ := keys.Open(keystore.KindFile, nil)
	ids, _ := ks.List("")
	if len(ids) != 3 {
		t.Errorf("keys after the second run: %v (want build's, web's new one and db's)", ids)
	}

	// Another service's catalog does not update this one's contexts.
	s2 := Sync{URL: "https://other.example.com:2377", Prefix: "team-", Cert: cert2, Key: key2, KeyStore: keystore.KindFile}
	res, _, _ = s2.Apply(store, []remoteca.CatalogEngine{engineOf(ca, "web", "tcp://10.0.0.9:2376")}, now)
	if got := outcomes(res); !strings.HasPrefix(got, "team-web=skipped(a context of that name exists that was not made from this catalog") {
		t.Errorf("another catalog: %s", got)
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{{"", true}, {"team-", true}, {"a", true}, {"-x", false}, {"a/b", false}, {"with space", false}} {
		if err := CheckPrefix(tc.prefix); (err == nil) != tc.ok {
			t.Errorf("CheckPrefix(%q): %v", tc.prefix, err)
		}
	}
}
