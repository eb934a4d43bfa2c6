package remoteca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker-tls/docker-tls/pki"
)

// TestTokenGroupsAreTheServices: a token's groups go into the certificate
// it enrolls, whatever Organization the CSR asks for; the inventory and
// the token list carry them.
func TestTokenGroupsAreTheServices(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, TokenOptions{CN: "alice", Groups: []string{"ops", "dev"}})
	p, err := ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	c := *f.client
	c.Fingerprint = p.Fingerprint
	ca, err := c.FetchCA(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "alice", Organization: []string{"admins"}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.Sign(context.Background(), ca, Auth{Token: tok}, csr, pki.ClientProfile, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := pki.GroupsOf(cert); !slices.Equal(got, []string{"dev", "ops"}) {
		t.Fatalf("the certificate's groups are %v, want the token's dev and ops (never the CSR's admins)", got)
	}
	issued, err := f.srv.DB.Issued(context.Background())
	if err != nil || len(issued) != 1 || !slices.Equal(issued[0].Groups, []string{"dev", "ops"}) {
		t.Errorf("inventory: %+v, %v", issued, err)
	}
	toks, err := f.srv.DB.Tokens()
	if err != nil || len(toks) != 1 || !slices.Equal(toks[0].Groups, []string{"dev", "ops"}) {
		t.Errorf("tokens: %+v, %v", toks, err)
	}
}

func TestTokenGroupsChecked(t *testing.T) {
	for _, tc := range []struct {
		o    TokenOptions
		want string
	}{
		{TokenOptions{Profile: pki.ClientProfile, Groups: []string{"a", "a"}}, "given twice"},
		{TokenOptions{Profile: pki.ServerProfile, SANs: []string{"e.example"}, Groups: []string{"ops"}}, "client tokens"},
	} {
		tc.o.TTL, tc.o.Uses = 3600e9, 1
		if err := CheckTokenOptions(&tc.o, 1); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}

// TestOlderDatabaseGainsGroupColumns: a database made before groups
// existed (tokens and issued without group_names) gains the columns once,
// keeps its rows, and a second open changes nothing.
func TestOlderDatabaseGainsGroupColumns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range schema {
		if _, err := old.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := old.Exec(`INSERT INTO tokens (hash, id, profile, created, expires, uses) VALUES ('h', 'abc', 'client', 1, 2, 1)`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	for range 2 {
		d, err := OpenDB(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		toks, err := d.Tokens()
		if err != nil || len(toks) != 1 || toks[0].ID != "abc" || toks[0].Groups != nil {
			t.Fatalf("the older token after the upgrade: %+v, %v", toks, err)
		}
		var n int
		if err := d.db.QueryRow(`SELECT count(*) FROM migrations WHERE name LIKE 'column %'`).Scan(&n); err != nil || n != len(columnsAdded) {
			t.Fatalf("%d column migrations recorded (%v), want %d", n, err, len(columnsAdded))
		}
		d.Close()
	}
}
