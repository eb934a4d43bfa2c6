package rotation

import (
	"fmt"
	"regexp"
	"time"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/pki"
)

// Plan lists what a rotation of ca moves: the engines set up from it (ready
// ones, on its present key), the contexts of those engines and every other
// context issued from it, or enrolled through its service, whose engine is
// one of them. Contexts for other engines are left alone, each with the
// commands its owner runs (Outside). LocalSerials are this machine's own
// client certificates of the CA, which the rotation renews itself.
func Plan(ca *castore.CA, engines []*engine.Record, store *contexts.Store, keepOld bool) (*State, error) {
	// A CA with a new one beside it and no record (a crash right after
	// StartRotation, the record since lost) rotates to that one:
	// StartRotation keeps the new CA it has.
	fp := pki.Fingerprint(ca.Cert)
	now := time.Now().UTC()
	st := &State{CA: ca.Name, OldFingerprint: fp, KeepOld: keepOld, Started: now, Updated: now}
	hosts := map[string]bool{}
	for _, r := range engines {
		if r.CA != ca.Name || r.CAFingerprint != fp || r.Status != engine.StatusReady {
			continue
		}
		st.Targets = append(st.Targets, &Target{Kind: Engine, Name: r.Name})
		hosts[r.Host] = true
	}
	list, _, err := store.List()
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		if !c.Managed() || c.TLS.CAFingerprint != fp || (c.TLS.CA != ca.Name && c.TLS.CAURL == "") {
			continue
		}
		if _, certPEM, err := store.PEMs(c); err == nil {
			if cert, err := pki.ParseCertificate(certPEM); err == nil {
				st.LocalSerials = append(st.LocalSerials, engine.Serial(cert))
			}
		}
		host := c.Host
		if c.AgentMode() {
			host = c.TLS.Remote
		}
		if hosts[host] {
			st.Targets = append(st.Targets, &Target{Kind: Context, Name: c.Name})
			continue
		}
		st.Outside = append(st.Outside, Outside{Context: c.Name, Host: host, Commands: []string{
			fmt.Sprintf("after the rotation, on the engine at %s: install a server certificate from the new CA (docker tls server issue HOST --ca %s --out DIR), use the new ca.pem as --tlscacert, restart dockerd", host, ca.Name),
			fmt.Sprintf("then here: docker tls context create %s --host %s --issue --ca %s --force", c.Name, host, ca.Name),
		}})
	}
	return st, nil
}

// dateSuffix is what a rotation adds to the CA's name: the day and the
// start of the new key's identifier, so two CAs of one name never share
// a subject (people, and openssl's error messages, tell them apart).
const dateSuffix = ` \(\d{4}-\d{2}-\d{2}[^)]*\)$`

// NextCA makes the CA that replaces old: a new key of the same type, the
// same name and organization with the day and the key's identifier added.
func NextCA(old *pki.CA, now time.Time) (*pki.CA, error) {
	kt, err := pki.KeyTypeOf(old.Key.Public())
	if err != nil {
		return nil, err
	}
	key, err := pki.GenerateKey(kt)
	if err != nil {
		return nil, err
	}
	ski, err := pki.SubjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	cn := fmt.Sprintf("%s (%s, %x)", regexp.MustCompile(dateSuffix).ReplaceAllString(old.Cert.Subject.CommonName, ""), now.Format("2006-01-02"), ski[:2])
	var org string
	if len(old.Cert.Subject.Organization) > 0 {
		org = old.Cert.Subject.Organization[0]
	}
	return pki.NewCA(key, pki.CAOptions{CommonName: cn, Organization: org, Now: now})
}

// Start makes the new CA beside the old one (phase 1), once: a CA that has
// one already (a run stopped after this step) keeps it. It returns the CA
// as stored with its new one.
func Start(cas *castore.Store, st *State, old *castore.CA, signer *pki.CA, passphrase []byte, save func(*State) error) (*castore.CA, error) {
	if st.Phase >= Started && old.NextCert != nil {
		return old, nil
	}
	now := time.Now()
	next, err := NextCA(signer, now)
	if err != nil {
		return nil, err
	}
	stored, err := cas.StartRotation(st.CA, next, passphrase, now)
	if err != nil {
		return nil, err
	}
	st.NewFingerprint = pki.Fingerprint(stored.NextCert)
	st.Phase = Started
	for _, t := range st.Targets {
		t.Done = Started
	}
	if err := save(st); err != nil {
		return nil, err
	}
	return stored, nil
}
