package probe

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/pki"
)

// Contexts turns contexts into targets: it reads a context's CA,
// certificate and key as the docker CLI would, and notes where what the
// docker CLI loads differs from what a check would use.
type Contexts struct {
	Store *contexts.Store
	// StoredKey opens the key store copy of a managed context's key (kept
	// in memory only); nil leaves only the context's key.pem.
	StoredKey func(c *contexts.Context) (crypto.Signer, error)
	// RenewalProblem says why a context's automatic renewal fails, or "".
	RenewalProblem func(name string) string
}

// Target reads the context called name.
func (s Contexts) Target(name string) (Target, error) {
	c, err := s.Store.Get(name)
	if err != nil {
		return Target{}, err
	}
	return s.TargetOf(c), nil
}

// TargetOf is Target for a context already read. What cannot be read is
// not an error here: the target's KeyProblem (or a nil CA or certificate)
// carries it to the check that reports it.
func (s Contexts) TargetOf(c *contexts.Context) Target {
	t := Target{Name: c.Name, Host: c.Host}
	s.readCerts(c, &t)
	var storeErr error
	if c.Managed() {
		t.CAName, t.CAURL, t.SignIn, t.Locked = c.TLS.CA, c.TLS.CAURL, c.TLS.SignIn, c.Locked()
		if s.RenewalProblem != nil {
			t.RenewalProblem = s.RenewalProblem(c.Name)
		}
		if s.StoredKey != nil {
			t.Key, storeErr = s.StoredKey(c)
		}
	}
	fileKey := s.fileKey(c, &t)
	if t.Key == nil {
		t.Key = fileKey
	}
	if c.Managed() && !c.AgentMode() && c.HasFile(contexts.KeyFile) && t.Cert != nil {
		compareKeyFile(c, &t, fileKey)
	}
	if t.Key == nil && t.KeyProblem == "" {
		t.KeyProblem = noKey(c, storeErr)
	}
	return t
}

// readCerts reads the CA bundle and the client certificate: from the
// context's files, or for an agent-mode context from its metadata (the
// engine is then checked directly with the same material, and the agent's
// own socket besides).
func (s Contexts) readCerts(c *contexts.Context, t *Target) {
	if c.AgentMode() {
		t.Host, t.AgentSocket = c.TLS.Remote, strings.TrimPrefix(c.Host, "unix://")
		t.CA, t.MoreCAs = CABundle([]byte(c.TLS.CAPEM))
		t.Cert, _ = pki.ParseCertificate([]byte(c.TLS.CertPEM))
		return
	}
	if data, err := s.Store.ReadFile(c.Name, contexts.CAFile); err == nil {
		t.CA, t.MoreCAs = CABundle(data)
	}
	if data, err := s.Store.ReadFile(c.Name, contexts.CertFile); err == nil {
		t.Cert, _ = pki.ParseCertificate(data)
	}
}

// noKey says why a context has no key to check, storeErr being what the
// key store said.
func noKey(c *contexts.Context, storeErr error) string {
	switch {
	case storeErr != nil && c.Locked():
		return fmt.Sprintf("the context is locked and its key is not in the key store (%v)", storeErr)
	case storeErr != nil:
		return fmt.Sprintf("the key is not in the key store (%v) and the context has no key.pem", storeErr)
	}
	return "the context has no key.pem"
}

const unreadableKeyFile = "the context's key.pem cannot be read: "

// fileKey reads the context's key.pem, if it has one; a key.pem that is
// there but unusable is t's KeyProblem.
func (s Contexts) fileKey(c *contexts.Context, t *Target) crypto.Signer {
	if !c.HasFile(contexts.KeyFile) {
		return nil
	}
	data, err := s.Store.ReadFile(c.Name, contexts.KeyFile)
	if err != nil {
		return nil
	}
	key, err := pki.ParsePrivateKey(data, nil)
	if err != nil {
		t.KeyProblem = unreadableKeyFile + err.Error()
		return nil
	}
	return key
}

// compareKeyFile checks that key.pem, which the docker CLI loads, is the
// key that was checked, and the key store's copy the key of the
// certificate; where one is right and the other is not, the check uses
// the right one and says how to repair the other.
func compareKeyFile(c *contexts.Context, t *Target, fileKey crypto.Signer) {
	unlock := "docker tls unlock --force " + c.Name
	switch {
	case fileKey == nil:
		t.KeyFileProblem = fmt.Sprintf("the context's key.pem, which the docker CLI loads, is not a usable key (%s)", strings.TrimPrefix(t.KeyProblem, unreadableKeyFile))
		t.KeyFileFix = unlock
	case pki.CheckKeyMatch(t.Cert, fileKey) != nil && t.Key != fileKey && pki.CheckKeyMatch(t.Cert, t.Key) == nil:
		t.KeyFileProblem = "the context's key.pem, which the docker CLI loads, is not the key of its certificate (the key store's copy is)"
		t.KeyFileFix = unlock
	case t.Key != fileKey && pki.CheckKeyMatch(t.Cert, t.Key) != nil && pki.CheckKeyMatch(t.Cert, fileKey) == nil:
		t.Key = fileKey
		t.KeyFileProblem = fmt.Sprintf("the key store entry %s is not the key of the certificate (the context's key.pem is)", c.TLS.KeyID)
		t.KeyFileFix = fmt.Sprintf("docker tls context create %s --force --host %s --ca-file %s --cert %s --key %s", c.Name, c.Host,
			filepath.Join(c.TLSDir, contexts.CAFile), filepath.Join(c.TLSDir, contexts.CertFile), filepath.Join(c.TLSDir, contexts.KeyFile))
	}
}

// CABundle reads a ca.pem as the docker CLI does: every certificate in it
// is trusted. The first is the context's CA for messages; nil if none.
func CABundle(data []byte) (*x509.Certificate, []*x509.Certificate) {
	cas, err := pki.ParseCertificates(data)
	if err != nil || len(cas) == 0 {
		return nil, nil
	}
	return cas[0], cas[1:]
}

// ServesAPI is the check from this machine after an engine's restart: the
// engine serves the Docker API over mutual TLS to target's identity.
func ServesAPI(target Target) func(context.Context) error {
	return func(ctx context.Context) error {
		r := Run(ctx, target, Options{Timeout: 3 * time.Second})
		if c := r.First(Fail); c != nil {
			return fmt.Errorf("the check from here failed: %s", c.Message)
		}
		return nil
	}
}
