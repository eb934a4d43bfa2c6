package remoteca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/policy"
)

// identityOf is a client certificate of f's CA for cn in groups, as the
// tls.Certificate a client presents.
func (f *fixture) identityOf(t *testing.T, cn string, groups ...string) tls.Certificate {
	t.Helper()
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert, err := f.ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: cn, Groups: groups, PublicKey: key.Public(), Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

func grants(t *testing.T, gs ...string) *policy.Policy {
	t.Helper()
	p := &policy.Policy{}
	for _, g := range gs {
		gr, err := policy.ParseGrant(g)
		if err != nil {
			t.Fatal(err)
		}
		p.Set(gr)
	}
	return p
}

// TestCatalog: catalog admins publish, replace and remove engines with
// their client certificate; anyone else with a valid certificate of the CA
// lists only the engines where their user or a group has a role, with
// that role; everything else is refused in one sentence, on both
// databases.
func TestCatalog(t *testing.T) {
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			db, _ := openDB(t, kind)
			f := newFixtureWith(t, db)
			f.srv.CatalogAdmins = []policy.Subject{"user:root@example.com", "group:platform"}
			ctx := context.Background()
			trust := f.ca.Cert
			c := f.client
			caPEM := string(pki.EncodeCertificate(f.ca.Cert))
			admin := f.identityOf(t, "root@example.com")
			byGroup := f.identityOf(t, "pat@example.com", "platform")
			viewer := f.identityOf(t, "vic@example.com", "dev")
			nobody := f.identityOf(t, "nob@example.com", "sales")

			engines := []CatalogEngine{
				{Name: "build", Host: "tcp://10.0.0.1:2376", CA: caPEM, Policy: grants(t, "group:dev=viewer", "user:root@example.com=admin")},
				{Name: "prod", Host: "tcp://10.0.0.2:2376", CA: caPEM, Policy: grants(t, "group:dev=operator")},
				{Name: "secret", Host: "tcp://10.0.0.3:2376", CA: caPEM, Policy: grants(t, "user:root@example.com=admin")},
				{Name: "open", Host: "tcp://10.0.0.4:2376", CA: caPEM}, // no policy: every certificate is admin
			}
			for i, e := range engines {
				who := admin
				if i%2 == 1 {
					who = byGroup // a group admin publishes too
				}
				if replaced, err := c.Publish(ctx, []*x509.Certificate{trust}, who, e); err != nil || replaced {
					t.Fatalf("publish %s: %v %v", e.Name, replaced, err)
				}
			}
			list, err := c.Catalog(ctx, []*x509.Certificate{trust}, viewer)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, e := range list {
				got = append(got, e.Name+"="+e.Role.String())
			}
			if strings.Join(got, " ") != "build=viewer open=admin prod=operator" {
				t.Errorf("vic's catalog: %v", got)
			}
			if list[0].PublishedBy != "root@example.com" || list[2].PublishedBy != "pat@example.com" || list[0].Published.IsZero() {
				t.Errorf("publisher: %+v", list)
			}
			if list, err := c.Catalog(ctx, []*x509.Certificate{trust}, nobody); err != nil || len(list) != 1 || list[0].Name != "open" {
				t.Errorf("a user with no role sees only the engine without a policy: %v %v", list, err)
			}

			// A new endpoint replaces the old one.
			engines[0].Host = "tcp://10.0.0.9:2376"
			if replaced, err := c.Publish(ctx, []*x509.Certificate{trust}, admin, engines[0]); err != nil || !replaced {
				t.Fatalf("republish: %v %v", replaced, err)
			}
			if err := c.Unpublish(ctx, []*x509.Certificate{trust}, admin, "open"); err != nil {
				t.Fatal(err)
			}
			list, _ = c.Catalog(ctx, []*x509.Certificate{trust}, viewer)
			if len(list) != 2 || list[0].Host != "tcp://10.0.0.9:2376" {
				t.Errorf("after the changes: %+v", list)
			}

			other := newFixture(t)
			otherPEM := string(pki.EncodeCertificate(other.ca.Cert))
			refusals := []struct {
				name string
				do   func() error
				want string
			}{
				{"a viewer publishes", func() error {
					_, err := c.Publish(ctx, []*x509.Certificate{trust}, viewer, engines[1])
					return err
				}, `"vic@example.com" (groups dev) is not a catalog admin of this service (its --catalog-admin: user:root@example.com, group:platform)`},
				{"a viewer removes", func() error { return c.Unpublish(ctx, []*x509.Certificate{trust}, viewer, "prod") }, "is not a catalog admin"},
				{"an engine of another CA", func() error {
					_, err := c.Publish(ctx, []*x509.Certificate{trust}, admin, CatalogEngine{Name: "x1", Host: "tcp://h:2376", CA: otherPEM})
					return err
				}, `engine "x1": its CA (` + pki.Fingerprint(other.ca.Cert) + `) is not this service's CA`},
				{"a bad name", func() error {
					_, err := c.Publish(ctx, []*x509.Certificate{trust}, admin, CatalogEngine{Name: "../x", Host: "tcp://h:2376", CA: caPEM})
					return err
				}, `engine name "../x"`},
				{"a bad endpoint", func() error {
					_, err := c.Publish(ctx, []*x509.Certificate{trust}, admin, CatalogEngine{Name: "x2", Host: "ssh://h", CA: caPEM})
					return err
				}, `endpoint "ssh://h" is not tcp://HOST:PORT`},
				{"a bad policy", func() error {
					_, err := c.Publish(ctx, []*x509.Certificate{trust}, admin, CatalogEngine{Name: "x3", Host: "tcp://h:2376", CA: caPEM, Policy: &policy.Policy{Grants: []policy.Grant{{Subject: "root", Role: policy.Admin}}}})
					return err
				}, `its policy: subject "root"`},
				{"removing an unknown engine", func() error { return c.Unpublish(ctx, []*x509.Certificate{trust}, admin, "nope") }, `engine "nope" is not in the catalog`},
				{"a certificate of another CA", func() error {
					_, err := c.Catalog(ctx, []*x509.Certificate{trust}, other.identityOf(t, "root@example.com"))
					return err
				}, "the CA refused"},
				{"no certificate", func() error {
					_, err := c.Catalog(ctx, []*x509.Certificate{trust}, tls.Certificate{})
					return err
				}, "the catalog needs a client certificate from this CA"},
			}
			for _, r := range refusals {
				if err := r.do(); err == nil || !strings.Contains(err.Error(), r.want) {
					t.Errorf("%s: %v, want %q", r.name, err, r.want)
				}
			}
			// A revoked name lists nothing, even with a valid certificate.
			if _, err := f.srv.DB.RevokeName(ctx, "vic@example.com", "left", time.Now()); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Catalog(ctx, []*x509.Certificate{trust}, viewer); err == nil || !strings.Contains(err.Error(), "revoked") {
				t.Errorf("a revoked identity: %v", err)
			}
			// The refused changes changed nothing.
			all, err := f.srv.DB.Catalog(ctx)
			if err != nil || len(all) != 3 {
				t.Errorf("catalog after refusals: %d %v", len(all), err)
			}
			// Without catalog admins nobody publishes.
			f.srv.CatalogAdmins = nil
			if _, err := c.Publish(ctx, []*x509.Certificate{trust}, admin, engines[1]); err == nil || !strings.Contains(err.Error(), "this service has no catalog admins") {
				t.Errorf("no admins: %v", err)
			}
		})
	}
}
