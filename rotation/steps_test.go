package rotation

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/internal/journal"
	"github.com/docker-tls/docker-tls/internal/keyringtest"
	"github.com/docker-tls/docker-tls/internal/pkitest"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

func newCA(t *testing.T, cn string) *pki.CA { return pkitest.NewCA(t, cn, "Team") }

func newContexts(t *testing.T) *contexts.Store {
	dir := t.TempDir()
	keys := keystore.Stores{Dir: filepath.Join(dir, "tls", "keys"), Backend: keyringtest.New()}
	return contexts.New(dir, keys, journal.New(filepath.Join(dir, "tls"), keys.TempDir()))
}

func addContext(t *testing.T, s *contexts.Store, ca *pki.CA, name, host string) {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "me@" + name, PublicKey: key.Public(), Lifetime: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(contexts.CreateOptions{Name: name, Host: host, Identity: contexts.Identity{CA: ca.Cert, Cert: cert, Key: key}, KeyStore: keystore.KindFile, CAName: "team"}); err != nil {
		t.Fatal(err)
	}
}

// pems are the subjects of the CAs a context trusts, and its
// certificate's "issuer|subject".
func pems(t *testing.T, s *contexts.Store, name string) ([]string, string) {
	t.Helper()
	c, err := s.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, certPEM, err := s.PEMs(c)
	if err != nil {
		t.Fatal(err)
	}
	cas, err := pki.ParseCertificates(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cas {
		names = append(names, c.Subject.CommonName)
	}
	cert, err := pki.ParseCertificate(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return names, cert.Issuer.CommonName + "|" + cert.Subject.CommonName
}

func TestPlanTakesItsEnginesAndLeavesOthersAlone(t *testing.T) {
	old := newCA(t, "team CA")
	store := newContexts(t)
	addContext(t, store, old, "build", "tcp://build:2376")
	addContext(t, store, old, "byhand", "tcp://elsewhere:2376")
	other := newCA(t, "other CA")
	addContext(t, store, other, "foreign", "tcp://build:2376")
	fp := pki.Fingerprint(old.Cert)
	engines := []*engine.Record{
		{Name: "build", CA: "team", CAFingerprint: fp, Host: "tcp://build:2376", Status: engine.StatusReady},
		{Name: "half", CA: "team", CAFingerprint: fp, Host: "tcp://half:2376", Status: engine.StatusSettingUp},
		{Name: "stale", CA: "team", CAFingerprint: "00", Host: "tcp://stale:2376", Status: engine.StatusReady},
	}
	st, err := Plan(&castore.CA{Meta: castore.Meta{Name: "team"}, Cert: old.Cert}, engines, store, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range st.Targets {
		got = append(got, string(tg.Kind)+":"+tg.Name)
	}
	if strings.Join(got, " ") != "engine:build context:build" {
		t.Errorf("targets %v, want the ready engine on this CA and its context", got)
	}
	if len(st.Outside) != 1 || st.Outside[0].Context != "byhand" || !strings.Contains(st.Outside[0].Commands[1], "--ca team") {
		t.Errorf("outside %+v, want byhand with its commands", st.Outside)
	}
	if len(st.LocalSerials) != 2 || !st.KeepOld || st.OldFingerprint != fp {
		t.Errorf("serials %v keepOld %v fp %s", st.LocalSerials, st.KeepOld, st.OldFingerprint)
	}
}

func TestNextCANamesAndKeys(t *testing.T) {
	old := newCA(t, "team CA")
	day := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	next, err := NextCA(old, day)
	if err != nil {
		t.Fatal(err)
	}
	cn := next.Cert.Subject.CommonName
	if !strings.HasPrefix(cn, "team CA (2026-12-05, ") || next.Cert.Subject.Organization[0] != "Team" {
		t.Errorf("new CA subject %q %v", cn, next.Cert.Subject.Organization)
	}
	if pki.Fingerprint(next.Cert) == pki.Fingerprint(old.Cert) || !next.Cert.IsCA {
		t.Error("the new CA is not a new CA")
	}
	if kt, _ := pki.KeyTypeOf(next.Key.Public()); kt != pki.ECDSAP256 {
		t.Errorf("key type %s, want the old CA's", kt)
	}
	// A second rotation replaces the suffix instead of adding one.
	again, err := NextCA(next, day.AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Cert.Subject.CommonName; !strings.HasPrefix(got, "team CA (2027-12-05, ") || strings.Count(got, "(") != 1 {
		t.Errorf("second rotation's name %q", got)
	}
}

func TestContextStepsAndBack(t *testing.T) {
	ctx := context.Background()
	old, next := newCA(t, "old CA"), newCA(t, "new CA")
	store := newContexts(t)
	addContext(t, store, old, "build", "tcp://build:2376")
	var recorded []string
	s := &Steps{CA: &castore.CA{Meta: castore.Meta{Name: "team"}, Cert: old.Cert}, Old: old, New: next, Contexts: store,
		Record: func(_ context.Context, signer *pki.CA, source string) pki.Issuer {
			return recordingSigner{CA: signer, source: source, log: &recorded}
		}}
	tg := &Target{Kind: Context, Name: "build"}
	steps := []struct {
		apply    bool
		phase    Phase
		trusts   string
		identity string
	}{
		{true, TrustBoth, "old CA,new CA", "old CA|me@build"},
		{true, Reissued, "old CA,new CA", "new CA|me@build"},
		{false, Reissued, "old CA,new CA", "old CA|me@build"},
		{true, Reissued, "old CA,new CA", "new CA|me@build"},
		{true, Retired, "new CA", "new CA|me@build"},
	}
	c0, _ := store.Get("build")
	for i, st := range steps {
		var err error
		if st.apply {
			err = s.Apply(ctx, tg, st.phase)
		} else {
			err = s.Revert(ctx, tg, st.phase)
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		trusts, id := pems(t, store, "build")
		if strings.Join(trusts, ",") != st.trusts || id != st.identity {
			t.Errorf("step %d: trusts %v, certificate %s; want %s, %s", i, trusts, id, st.trusts, st.identity)
		}
		// The key stays: one identity, one key, whatever CA signs it.
		if c, _ := store.Get("build"); c.TLS.KeyID != c0.TLS.KeyID {
			t.Errorf("step %d: the key changed (%s -> %s)", i, c0.TLS.KeyID, c.TLS.KeyID)
		}
	}
	// Every certificate the steps issued went through the inventory.
	if want := "context build by new CA,context build by old CA,context build by new CA"; strings.Join(recorded, ",") != want {
		t.Errorf("recorded %v, want %s", recorded, want)
	}
	// Without a service database, no laptop holds a phase.
	if err := s.BeforePhase(ctx, &State{}, Retired); err != nil {
		t.Errorf("gate without a database: %v", err)
	}
}

// recordingSigner logs what it issues, as the CA's inventory would record it.
type recordingSigner struct {
	*pki.CA
	source string
	log    *[]string
}

func (r recordingSigner) Issue(req pki.IssueRequest) (*x509.Certificate, error) {
	*r.log = append(*r.log, r.source+" by "+r.CA.Cert.Subject.CommonName)
	return r.CA.Issue(req)
}
