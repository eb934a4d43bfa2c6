package remoteca

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

type dbFixture struct {
	ca  *pki.CA
	ctx context.Context
}

func newDBFixture(t testing.TB) *dbFixture {
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	ca, err := pki.NewCA(key, pki.CAOptions{CommonName: "db test CA"})
	if err != nil {
		t.Fatal(err)
	}
	return &dbFixture{ca: ca, ctx: context.Background()}
}

// enroll spends tok on a certificate for key (a fresh one if nil).
func (f *dbFixture) enroll(d *DB, tok string, req Request, key crypto.Signer, now time.Time) (*x509.Certificate, bool, error) {
	if key == nil {
		key, _ = pki.GenerateKey(pki.ECDSAP256)
	}
	p, err := ParseToken(tok)
	if err != nil {
		return nil, false, err
	}
	spki, _ := x509.MarshalPKIXPublicKey(key.Public())
	cert, _, replay, err := d.Enroll(f.ctx, Enrollment{Secret: p.Secret, Req: req, PublicKey: PublicKeyID(spki), Source: "test", Now: now},
		func(t *Token) (*x509.Certificate, error) {
			cn := req.CN
			if t.CN != "" {
				cn = t.CN
			}
			return f.ca.Issue(pki.IssueRequest{Profile: t.Profile, CommonName: cn, PublicKey: key.Public(), Now: now, Lifetime: 48 * time.Hour})
		})
	return cert, replay, err
}

func (f *dbFixture) renew(d *DB, old *x509.Certificate, key crypto.Signer, now time.Time) (*x509.Certificate, bool, error) {
	spki, _ := x509.MarshalPKIXPublicKey(key.Public())
	cert, _, replay, err := d.Renew(f.ctx, Renewal{Old: old, PublicKey: PublicKeyID(spki), Source: "test", Now: now},
		func(issuedAt time.Time) (*x509.Certificate, error) {
			return f.ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: old.Subject.CommonName, PublicKey: key.Public(), Now: now, Lifetime: old.NotAfter.Sub(issuedAt)})
		})
	return cert, replay, err
}

func (f *dbFixture) tokens(t testing.TB, d *DB, o TokenOptions, n int) []string {
	t.Helper()
	if o.Profile == "" {
		o.Profile = pki.ClientProfile
	}
	if o.TTL == 0 {
		o.TTL = time.Hour
	}
	if o.Uses == 0 {
		o.Uses = 1
	}
	toks, _, err := d.NewBatch(f.ca.Cert.Raw, o, n)
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

// TestDBTokenRules: the rules of a token, the same in both databases.
func TestDBTokenRules(t *testing.T) {
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			f := newDBFixture(t)
			d, _ := openDB(t, kind)
			now := time.Now()
			toks := f.tokens(t, d, TokenOptions{CN: "alice", Uses: 2, Now: now}, 3)
			client := Request{Profile: pki.ClientProfile, CN: "alice"}

			failing := func(*Token) (*x509.Certificate, error) { return nil, errors.New("the signer failed") }
			p0, _ := ParseToken(toks[0])
			if _, _, _, err := d.Enroll(f.ctx, Enrollment{Secret: p0.Secret, Req: client, Now: now}, failing); err == nil || err.Error() != "the signer failed" {
				t.Fatalf("failing signer: %v", err)
			}
			key := mustKey(t)
			first, replay, err := f.enroll(d, toks[0], client, key, now)
			if err != nil || replay {
				t.Fatalf("first use: %v %v", replay, err)
			}
			// The same token and key again: the same certificate, no use spent.
			again, replay, err := f.enroll(d, toks[0], client, key, now)
			if err != nil || !replay || again.SerialNumber.Cmp(first.SerialNumber) != 0 {
				t.Fatalf("retry: replay=%v err=%v", replay, err)
			}
			if _, _, err := f.enroll(d, toks[0], client, nil, now); err != nil {
				t.Fatalf("second use (another key): %v", err)
			}
			if _, _, err := f.enroll(d, toks[0], client, nil, now); !errors.Is(err, ErrTokenUsed) {
				t.Errorf("third use of a 2-use token: %v", err)
			}
			// A retry of the first still works after the token is used up.
			if again, replay, err := f.enroll(d, toks[0], client, key, now); err != nil || !replay || again.SerialNumber.Cmp(first.SerialNumber) != 0 {
				t.Errorf("retry after the last use: %v %v", replay, err)
			}
			if _, _, err := f.enroll(d, toks[1], Request{Profile: pki.ServerProfile}, nil, now); !errors.Is(err, ErrTokenMismatch) {
				t.Errorf("server request on a client token: %v", err)
			}
			if _, _, err := f.enroll(d, toks[1], Request{Profile: pki.ClientProfile, CN: "mallory"}, nil, now); !errors.Is(err, ErrTokenMismatch) {
				t.Errorf("another CN: %v", err)
			}
			if _, _, err := f.enroll(d, toks[1], client, nil, now.Add(2*time.Hour)); !errors.Is(err, ErrTokenExpired) {
				t.Errorf("expired: %v", err)
			}
			unknown := ParsedToken{Fingerprint: p0.Fingerprint, Secret: strings.Repeat("Z", 43)}.String()
			if _, _, err := f.enroll(d, unknown, client, nil, now); !errors.Is(err, ErrTokenUnknown) {
				t.Errorf("unknown: %v", err)
			}
			list, err := d.Tokens()
			if err != nil || len(list) != 3 {
				t.Fatalf("Tokens: %d, %v", len(list), err)
			}
			p2, _ := ParseToken(toks[2])
			var id string
			for _, tok := range list {
				if tok.Hash == hashSecret(p2.Secret) {
					id = tok.ID
				}
				if tok.Hash == hashSecret(p0.Secret) && tok.Used != 2 {
					t.Errorf("used = %d, want 2", tok.Used)
				}
				if strings.Contains(tok.Hash, p0.Secret) {
					t.Error("the database holds a secret")
				}
			}
			if _, err := d.RevokeToken(id[:8]); err != nil {
				t.Fatal(err)
			}
			if _, _, err := f.enroll(d, toks[2], client, nil, now); !errors.Is(err, ErrTokenUnknown) {
				t.Errorf("revoked: %v", err)
			}
			for _, bad := range []string{"ffffffffffff", "", "%"} {
				if _, err := d.RevokeToken(bad); err == nil || !strings.Contains(err.Error(), "no token with id") {
					t.Errorf("revoke %q: %v", bad, err)
				}
			}
			issued, err := d.Issued(f.ctx)
			if err != nil || len(issued) != 2 {
				t.Fatalf("issued: %d %v", len(issued), err)
			}
			for _, n := range []int{0, 10001} {
				if _, _, err := d.NewBatch(f.ca.Cert.Raw, TokenOptions{Profile: pki.ClientProfile, TTL: time.Hour, Uses: 1}, n); err == nil || !strings.Contains(err.Error(), "--count") {
					t.Errorf("count %d: %v", n, err)
				}
			}
		})
	}
}

// TestDBOneTimeAcrossReplicas: two handles on one database (two ca serve
// replicas), 64 concurrent enrollments with 64 keys on 10 tokens of 2
// uses: exactly 20 succeed, the rest are told the token is used.
func TestDBOneTimeAcrossReplicas(t *testing.T) {
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			f := newDBFixture(t)
			a, where := openDB(t, kind)
			b := reopen(t, where)
			toks := f.tokens(t, a, TokenOptions{CN: "x", Uses: 2}, 10)
			var ok atomic.Int32
			var wg sync.WaitGroup
			for i := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					d := []*DB{a, b}[i%2]
					if _, _, err := f.enroll(d, toks[i%10], Request{Profile: pki.ClientProfile}, nil, time.Now()); err == nil {
						ok.Add(1)
					} else if !errors.Is(err, ErrTokenUsed) {
						t.Errorf("enroll: %v", err)
					}
				}()
			}
			wg.Wait()
			if ok.Load() != 20 {
				t.Errorf("%d enrollments succeeded, want exactly 20", ok.Load())
			}
			if issued, _ := b.Issued(f.ctx); len(issued) != 20 {
				t.Errorf("%d certificates recorded, want 20", len(issued))
			}
		})
	}
}

// TestDBRetriesAcrossReplicas: one client retrying the same token and key
// on two replicas at once gets one certificate, and the token is spent once.
func TestDBRetriesAcrossReplicas(t *testing.T) {
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			f := newDBFixture(t)
			a, where := openDB(t, kind)
			b := reopen(t, where)
			tok := f.tokens(t, a, TokenOptions{CN: "x", Uses: 3}, 1)[0]
			key := mustKey(t)
			oneAnswer(t, 12, a, b, func(d *DB) (*x509.Certificate, error) {
				cert, _, err := f.enroll(d, tok, Request{Profile: pki.ClientProfile}, key, time.Now())
				return cert, err
			})
			list, _ := a.Tokens()
			if list[0].Used != 1 {
				t.Errorf("the token was spent %d times", list[0].Used)
			}
		})
	}
}

// TestDBRenewAndRevoke: a certificate renews once (a retry with the same
// key gets the same answer); revoked certificates and names renew and
// enroll no more; the inventory shows each state.
func TestDBRenewAndRevoke(t *testing.T) {
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			f := newDBFixture(t)
			d, where := openDB(t, kind)
			now := time.Now()
			toks := f.tokens(t, d, TokenOptions{Uses: 3}, 1)
			old, _, err := f.enroll(d, toks[0], Request{Profile: pki.ClientProfile, CN: "alice"}, nil, now)
			if err != nil {
				t.Fatal(err)
			}
			k1 := mustKey(t)
			renewed, replay, err := f.renew(d, old, k1, now)
			if err != nil || replay {
				t.Fatalf("renew: %v %v", replay, err)
			}
			if again, replay, err := f.renew(reopen(t, where), old, k1, now); err != nil || !replay || again.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
				t.Fatalf("retried renewal: %v %v", replay, err)
			}
			if _, _, err := f.renew(d, old, mustKey(t), now); !errors.Is(err, ErrAlreadyRenewed) || !strings.Contains(err.Error(), fmt.Sprintf("%x", renewed.SerialNumber)) {
				t.Fatalf("second renewal with another key: %v", err)
			}
			// Revoke the renewed certificate by a prefix of its serial.
			serial := fmt.Sprintf("%x", renewed.SerialNumber)
			rev, err := d.RevokeSerial(f.ctx, serial[:10], "laptop lost", now)
			if err != nil || len(rev.Certificates) != 1 || rev.Certificates[0].Serial != serial {
				t.Fatalf("revoke serial: %+v %v", rev, err)
			}
			if _, _, err := f.renew(d, renewed, mustKey(t), now); !errors.Is(err, ErrCertRevoked) {
				t.Fatalf("renewing a revoked certificate: %v", err)
			}
			if rev, err := d.RevokeSerial(f.ctx, serial, "again", now); err != nil || len(rev.Certificates) != 0 {
				t.Fatalf("revoking twice: %+v %v", rev, err)
			}
			for _, bad := range []string{"xyz", "abc", "ffffffffffffffffff"} {
				if _, err := d.RevokeSerial(f.ctx, bad, "", now); err == nil {
					t.Errorf("revoke %q accepted", bad)
				}
			}
			// Another identity: revoking the name stops enrollment (the
			// token is not spent) and renewal.
			bob, _, err := f.enroll(d, toks[0], Request{Profile: pki.ClientProfile, CN: "bob"}, nil, now)
			if err != nil {
				t.Fatal(err)
			}
			rev, err = d.RevokeName(f.ctx, "bob", "left the team", now)
			if err != nil || rev.Name != "bob" || len(rev.Certificates) != 1 {
				t.Fatalf("revoke name: %+v %v", rev, err)
			}
			if _, _, err := f.enroll(d, toks[0], Request{Profile: pki.ClientProfile, CN: "bob"}, nil, now); !errors.Is(err, ErrIdentityRevoked) {
				t.Fatalf("enrolling a revoked name: %v", err)
			}
			if _, _, err := f.renew(d, bob, mustKey(t), now); !errors.Is(err, ErrCertRevoked) {
				t.Fatalf("renewing a revoked name's certificate: %v", err)
			}
			// A certificate of that name the service never recorded (issued
			// by `docker tls client issue`) is refused by name.
			stray, _ := f.ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "bob", PublicKey: mustKey(t).Public()})
			if _, _, err := f.renew(d, stray, mustKey(t), now); !errors.Is(err, ErrIdentityRevoked) {
				t.Fatalf("renewing an unrecorded certificate of a revoked name: %v", err)
			}
			if list, _ := d.Tokens(); list[0].Used != 2 {
				t.Errorf("token used %d times, want 2", list[0].Used)
			}
			states := map[string]int{}
			issued, _ := d.Issued(f.ctx)
			for _, r := range issued {
				states[r.CN+"/"+r.State(now)]++
			}
			if want := map[string]int{"alice/renewed": 1, "alice/revoked": 1, "bob/revoked": 1}; fmt.Sprint(states) != fmt.Sprint(want) {
				t.Fatalf("states %v, want %v", states, want)
			}
		})
	}
}

// TestDBConcurrentRenewals: the same renewal sent to two replicas at once
// (a client retrying after a timeout) yields one certificate.
func TestDBConcurrentRenewals(t *testing.T) {
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			f := newDBFixture(t)
			a, where := openDB(t, kind)
			b := reopen(t, where)
			// Not in the inventory: issued by the local CA, as `context create` does.
			old, _ := f.ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "carol", PublicKey: mustKey(t).Public()})
			key := mustKey(t)
			oneAnswer(t, 10, a, b, func(d *DB) (*x509.Certificate, error) {
				cert, _, err := f.renew(d, old, key, time.Now())
				return cert, err
			})
		})
	}
}

// TestDBMigrate: an older docker-tls's tokens.json and issued.jsonl are
// imported once, kept as NAME.migrated, and go on working.
func TestDBMigrate(t *testing.T) {
	f := newDBFixture(t)
	dir := t.TempDir()
	_, toks, err := mint(f.ca.Cert.Raw, TokenOptions{Profile: pki.ClientProfile, CN: "x", TTL: time.Hour, Uses: 2}, 3)
	if err != nil {
		t.Fatal(err)
	}
	strs, _, _ := mint(f.ca.Cert.Raw, TokenOptions{Profile: pki.ClientProfile, CN: "x", TTL: time.Hour, Uses: 2}, 1)
	p, _ := ParseToken(strs[0])
	toks[0].Hash, toks[0].Used = hashSecret(p.Secret), 1
	data, _ := json.Marshal(toks)
	tokensJSON := filepath.Join(dir, "tokens.json")
	inventory := filepath.Join(dir, "issued.jsonl")
	os.WriteFile(tokensJSON, data, 0o600)
	os.WriteFile(inventory, []byte(`{"serial":"0a1b2c3d4e5f","cn":"old","profile":"client","notAfter":"2030-01-01T00:00:00Z","source":"10.0.0.1","issuedAt":"2026-01-01T00:00:00Z"}
{"serial":"torn`), 0o600)
	where := filepath.Join(dir, "service.db")
	for round := range 2 {
		d := reopen(t, where)
		if err := d.Migrate(f.ctx, tokensJSON, inventory); err != nil {
			t.Fatal(err)
		}
		list, _ := d.Tokens()
		issued, _ := d.Issued(f.ctx)
		if len(list) != 3 || len(issued) != 1 || issued[0].CN != "old" {
			t.Fatalf("round %d: %d tokens, %+v", round, len(list), issued)
		}
	}
	for _, p := range []string{tokensJSON, inventory} {
		if _, err := os.Stat(p + ".migrated"); err != nil {
			t.Errorf("no backup: %v", err)
		}
	}
	d := reopen(t, where)
	if _, _, err := f.enroll(d, strs[0], Request{Profile: pki.ClientProfile}, nil, time.Now()); err != nil {
		t.Errorf("second use after migration: %v", err)
	}
	if _, _, err := f.enroll(d, strs[0], Request{Profile: pki.ClientProfile}, nil, time.Now()); !errors.Is(err, ErrTokenUsed) {
		t.Errorf("third use after migration: %v", err)
	}
	if fi, err := os.Stat(where); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("service.db: %v %v", fi.Mode(), err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://ca:s3cret@db.example.com/ca":           "postgres://ca:xxxxx@db.example.com/ca",
		"postgres://db.example.com/ca?password=s3cret":     "postgres://db.example.com/ca?password=xxxxx",
		"postgres://ca@/ca?host=%2Fvar%2Frun%2Fpostgresql": "postgres://ca@/ca?host=%2Fvar%2Frun%2Fpostgresql",
		"postgresql://ca:s3cret@db/ca?sslmode=verify-full": "postgresql://ca:xxxxx@db/ca?sslmode=verify-full",
		"postgres://ca:p@ss@db/ca":                         "postgres://ca:xxxxx@db/ca",
		"postgres://db/ca?sslpassword=s3cret&user=ca":      "postgres://db/ca?sslpassword=xxxxx&user=ca",
		"postgres://ca:s3%zzcret@db/ca":                    "postgres://ca:xxxxx@db/ca", // does not parse
		// libpq's key=value form, plain and quoted.
		"host=db user=ca password=s3cret dbname=ca":  "host=db user=ca password=xxxxx dbname=ca",
		"host=db password = 's3 cret' dbname=ca":     "host=db password = xxxxx dbname=ca",
		"host=db password='it\\'s s3cret' dbname=ca": "host=db password=xxxxx dbname=ca",
		"host=db PASSWORD=s3cret sslpassword=s3cret": "host=db PASSWORD=xxxxx sslpassword=xxxxx",
		// Without "//": net/url reads it as opaque.
		"postgres:ca:s3cret@db/ca": "postgres:ca:xxxxx@db/ca",
		"postgresql:ca:s3cret@db":  "postgresql:ca:xxxxx@db",
		"ca:s3cret@db:5432/ca":     "ca:xxxxx@db:5432/ca",
		"/var/lib/ca/service.db":   "/var/lib/ca/service.db",
		"mysql://ca:s3cret@db/ca":  "mysql://ca:xxxxx@db/ca",
	} {
		if got := RedactURL(in); got != want || strings.Contains(got, "s3") || strings.Contains(got, "ss@") {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := OpenDB(context.Background(), "postgres://ca:s3cret@127.0.0.1:1/ca?connect_timeout=2"); err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "xxxxx") {
		t.Errorf("unreachable database: %v", err)
	}
}

// oneAnswer sends the same request n times at once, alternately to two
// replicas, and checks that every answer is the same certificate.
func oneAnswer(t *testing.T, n int, a, b *DB, request func(*DB) (*x509.Certificate, error)) {
	t.Helper()
	serials := make([]string, n)
	var wg sync.WaitGroup
	for i := range serials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cert, err := request([]*DB{a, b}[i%2])
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			serials[i] = cert.SerialNumber.String()
		}()
	}
	wg.Wait()
	for _, s := range serials {
		if s != serials[0] {
			t.Fatalf("one request, several certificates: %v", serials)
		}
	}
}

func mustKey(t testing.TB) crypto.Signer {
	k, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestDBStillOnCA: what a CA rotation waits for is the valid client
// certificates from the old CA: not renewed, revoked, expired, from
// another CA or for a server; a renewal recorded from outside the service
// (the rotation renewing this machine's contexts) counts as renewed.
func TestDBStillOnCA(t *testing.T) {
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			f := newDBFixture(t)
			d, _ := openDB(t, kind)
			now := time.Now()
			toks := f.tokens(t, d, TokenOptions{Uses: 10}, 1)
			enroll := func(cn string, profile pki.Profile) *x509.Certificate {
				t.Helper()
				if profile == pki.ServerProfile {
					sans, _, _ := pki.ParseSANs([]string{"h.example"})
					cert, err := f.ca.Issue(pki.IssueRequest{Profile: profile, CommonName: cn, SANs: sans, PublicKey: mustKey(t).Public(), Lifetime: time.Hour})
					if err != nil {
						t.Fatal(err)
					}
					if err := d.Record(f.ctx, newIssued(cert, "test", now)); err != nil {
						t.Fatal(err)
					}
					return cert
				}
				cert, _, err := f.enroll(d, toks[0], Request{Profile: profile, CN: cn}, nil, now)
				if err != nil {
					t.Fatal(err)
				}
				return cert
			}
			stays := enroll("alice", pki.ClientProfile)
			renewedOld := enroll("bob", pki.ClientProfile)
			if _, _, err := f.renew(d, renewedOld, mustKey(t), now); err != nil {
				t.Fatal(err)
			}
			enroll("carol", pki.ClientProfile)
			if _, err := d.RevokeName(f.ctx, "carol", "lost", now); err != nil {
				t.Fatal(err)
			}
			enroll("server", pki.ServerProfile)
			local := enroll("dave", pki.ClientProfile)

			// The rotation: a new CA; dave's context is renewed by the
			// rotation itself and recorded.
			nextKey, _ := pki.GenerateKey(pki.ECDSAP256)
			next, err := pki.NewCA(nextKey, pki.CAOptions{CommonName: "db test CA (next)"})
			if err != nil {
				t.Fatal(err)
			}
			localNew, err := next.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "dave", PublicKey: local.PublicKey, Lifetime: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ { // twice: no error the second time
				if err := d.RecordRenewal(f.ctx, local, localNew, "ca rotate", now); err != nil {
					t.Fatalf("RecordRenewal #%d: %v", i+1, err)
				}
			}

			left, err := d.StillOnCA(f.ctx, f.ca.Cert, now)
			if err != nil {
				t.Fatal(err)
			}
			// bob's renewal came from the old CA too (the fixture signs
			// with it): it is still on the old CA.
			var got []string
			for _, r := range left {
				got = append(got, r.CN)
			}
			if want := []string{"alice", "bob"}; strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("still on the old CA: %q, want %q", got, want)
			}
			if left[0].Serial != fmt.Sprintf("%x", stays.SerialNumber) || left[0].PEM != "" {
				t.Errorf("alice's record: %+v", left[0])
			}
			onNext, err := d.StillOnCA(f.ctx, next.Cert, now)
			if err != nil || len(onNext) != 1 || onNext[0].CN != "dave" {
				t.Errorf("on the new CA: %v, %v; want dave's recorded renewal", onNext, err)
			}
			if later, _ := d.StillOnCA(f.ctx, f.ca.Cert, now.Add(72*time.Hour)); len(later) != 0 {
				t.Errorf("expired certificates still counted: %d", len(later))
			}
			names, err := d.Names(f.ctx)
			if err != nil || strings.Join(names, ",") != "alice,bob,carol,dave,server" {
				t.Errorf("Names = %q, %v", names, err)
			}
		})
	}
}

// TestDBSignInOnceAcrossReplicas: one ID token sent at once to two
// replicas with 8 different keys gets one certificate; the others are
// refused as used (or, having lost the race on the index, told to try
// again, which then refuses them); a retry with the winning key gets
// the same certificate.
func TestDBSignInOnceAcrossReplicas(t *testing.T) {
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			f := newDBFixture(t)
			a, where := openDB(t, kind)
			b := reopen(t, where)
			keys := make([]crypto.Signer, 8)
			for i := range keys {
				keys[i] = mustKey(t)
			}
			signIn := func(d *DB, key crypto.Signer) (*x509.Certificate, bool, error) {
				spki, _ := x509.MarshalPKIXPublicKey(key.Public())
				cert, _, replay, err := d.SignIn(f.ctx, SignInRecord{IDToken: "the.id.token", PublicKey: PublicKeyID(spki), CN: "alice@example.com", Source: "test", Now: time.Now()},
					func() (*x509.Certificate, error) {
						return f.ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "alice@example.com", PublicKey: key.Public(), Lifetime: time.Hour})
					})
				return cert, replay, err
			}
			var ok atomic.Int32
			winner := make(chan int, len(keys))
			var wg sync.WaitGroup
			for i := range keys {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _, err := signIn([]*DB{a, b}[i%2], keys[i])
					switch {
					case err == nil:
						ok.Add(1)
						winner <- i
					case errors.Is(err, ErrSignInUsed), isUniqueViolation(err):
					default:
						t.Errorf("sign-in %d: %v", i, err)
					}
				}()
			}
			wg.Wait()
			if ok.Load() != 1 {
				t.Fatalf("%d certificates for one sign-in", ok.Load())
			}
			w := <-winner
			if _, replay, err := signIn(b, keys[w]); err != nil || !replay {
				t.Errorf("a retry with the winning key: replay=%v %v", replay, err)
			}
			if _, _, err := signIn(a, keys[(w+1)%len(keys)]); !errors.Is(err, ErrSignInUsed) {
				t.Errorf("another key after the race: %v", err)
			}
			if issued, _ := b.Issued(f.ctx); len(issued) != 1 {
				t.Errorf("%d certificates recorded, want 1", len(issued))
			}
		})
	}
}
