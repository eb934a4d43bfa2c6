package renewal

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/internal/journal"
	"github.com/docker-tls/docker-tls/internal/keyringtest"
	"github.com/docker-tls/docker-tls/internal/pkitest"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

func newCA(t *testing.T, cn string) *pki.CA { return pkitest.NewCA(t, cn, "") }

type fixture struct {
	store   *contexts.Store
	keys    keystore.Stores
	ca      *pki.CA
	next    *pki.CA // the new CA of a rotation, when one runs
	renewed []string
	opened  int // how many times the local CA's key was opened
}

func newFixture(t *testing.T) *fixture {
	dir := t.TempDir()
	keys := keystore.Stores{Dir: filepath.Join(dir, "tls", "keys"), Backend: keyringtest.New()}
	return &fixture{store: contexts.New(dir, keys, journal.New(filepath.Join(dir, "tls"), keys.TempDir())), keys: keys, ca: newCA(t, "team CA")}
}

func (f *fixture) renewer() *Renewer {
	return &Renewer{
		Contexts: f.store, Keys: f.keys,
		CA: func(name string) (*castore.CA, *pki.CA, error) {
			f.opened++
			stored := &castore.CA{Meta: castore.Meta{Name: name}, Cert: f.ca.Cert}
			if f.next != nil {
				stored.NextCert = f.next.Cert
			}
			return stored, f.ca, nil
		},
		Next:    func(*castore.CA) (*pki.CA, error) { return f.next, nil },
		Renewed: func(c *contexts.Context) { f.renewed = append(f.renewed, c.Name) },
	}
}

func (f *fixture) add(t *testing.T, name string, o contexts.CreateOptions) *contexts.Context {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := f.ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "me@laptop", PublicKey: key.Public(), Lifetime: 10 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	o.Name, o.Host, o.KeyStore = name, "tcp://build:2376", keystore.KindFile
	o.Identity = contexts.Identity{CA: f.ca.Cert, Cert: cert, Key: key}
	c, _, err := f.store.Create(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRenewFromLocalCA(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	c := f.add(t, "build", contexts.CreateOptions{CAName: "team"})
	_, oldPEM, _ := f.store.PEMs(c)
	old, _ := pki.ParseCertificate(oldPEM)

	cases := []struct {
		name    string
		o       Options
		life    time.Duration
		sameKey bool
	}{
		{"keeps key and lifetime", Options{}, 10 * 24 * time.Hour, true},
		{"rekey with a lifetime", Options{Rekey: true, Lifetime: 48 * time.Hour}, 48 * time.Hour, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := f.store.Get("build")
			cert, err := f.renewer().Renew(ctx, before, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if got := cert.NotAfter.Sub(cert.NotBefore) - pki.Backdate; got != tc.life {
				t.Errorf("lifetime %s, want %s", got, tc.life)
			}
			if cert.Subject.CommonName != old.Subject.CommonName || cert.SerialNumber.Cmp(old.SerialNumber) == 0 {
				t.Errorf("renewed %s serial %x", cert.Subject.CommonName, cert.SerialNumber)
			}
			after, _ := f.store.Get("build")
			if (after.TLS.KeyID == before.TLS.KeyID) != tc.sameKey {
				t.Errorf("key %s -> %s, same wanted %v", before.TLS.KeyID, after.TLS.KeyID, tc.sameKey)
			}
			_, nowPEM, _ := f.store.PEMs(after)
			if now, _ := pki.ParseCertificate(nowPEM); !now.Equal(cert) {
				t.Error("the context does not hold the new certificate")
			}
		})
	}
	if len(f.renewed) != 2 {
		t.Errorf("Renewed told %v", f.renewed)
	}
}

func TestRenewFollowsARotation(t *testing.T) {
	f := newFixture(t)
	c := f.add(t, "build", contexts.CreateOptions{CAName: "team"})
	f.next = newCA(t, "team CA (next)")
	// Phase 2: the context trusts both; a renewal still comes from the old
	// CA, then, once it trusts the new one, from the new one.
	bundle := append(pki.EncodeCertificate(f.ca.Cert), pki.EncodeCertificate(f.next.Cert)...)
	c, err := f.store.Retrust(c, bundle, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := f.renewer().Renew(context.Background(), c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cert.CheckSignatureFrom(f.next.Cert) != nil {
		t.Errorf("renewed by %s during a rotation the context follows, want the new CA", cert.Issuer.CommonName)
	}
	if f.opened != 1 {
		t.Errorf("the old CA's key was opened %d times for one renewal, want once (each can be a prompt)", f.opened)
	}
}

func TestRenewRefusals(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	imported := f.add(t, "imported", contexts.CreateOptions{Imported: true})
	local := f.add(t, "local", contexts.CreateOptions{CAName: "team"})
	if _, err := f.renewer().Renew(ctx, imported, Options{}); !errors.Is(err, ErrImported) {
		t.Errorf("imported: %v", err)
	}
	f.ca = newCA(t, "team CA") // re-created under the same name
	var changed *CAChangedError
	if _, err := f.renewer().Renew(ctx, local, Options{}); !errors.As(err, &changed) || changed.CA != "team" {
		t.Errorf("re-created CA: %v", err)
	}
	if len(f.renewed) != 0 {
		t.Errorf("refused renewals told Renewed: %v", f.renewed)
	}
}
