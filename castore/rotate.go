package castore

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

// A rotation replaces a CA in three committed steps, each one journaled
// change of the CA's directory: StartRotation adds the new CA beside the
// current one (next.pem, its key stored first), FinishRotation makes it the
// CA (the old key deleted only after that, or kept as retired), and
// AbortRotation drops it (its key deleted after the directory no longer
// names it). Between them both CAs can sign, so that the contexts and
// engines issued from the old one can be moved over one by one.

// ErrNoRotation is returned when a rotation step needs one in progress.
var ErrNoRotation = errors.New("no rotation in progress")

// StartRotation stores next as the CA that will replace name's, its key
// in the same kind of key store. Starting again with a rotation already in
// progress returns the CA as it is (the new CA of the first start).
func (s *Store) StartRotation(name string, next *pki.CA, passphrase []byte, now time.Time) (*CA, error) {
	return s.rotationStep(name, "rotate-start", next.Key, passphrase, func(cur *CA) (*plan, error) {
		if cur.NextCert != nil {
			return nil, nil
		}
		return startPlan(name, cur, next, now)
	})
}

func startPlan(name string, cur *CA, next *pki.CA, now time.Time) (*plan, error) {
	if len(next.Cert.SubjectKeyId) == 0 {
		if ski, err := pki.SubjectKeyID(next.Cert.PublicKey); err == nil {
			next.Cert.SubjectKeyId = ski
		}
	}
	nextRef := keystore.Ref{Store: cur.KeyStore, ID: KeyID(name, next.Cert)}
	if nextRef.ID == cur.KeyID {
		return nil, errors.New("the new CA has the same key as the current one")
	}
	meta := cur.Meta
	meta.Next = &NextMeta{KeyStore: nextRef.Store, KeyID: nextRef.ID, Created: now.UTC()}
	// No old key: nothing is deleted when this commits; undone, the new
	// key is (newKeyIsExtra).
	return &plan{New: nextRef, PutKey: true, CertPEM: string(pki.EncodeCertificate(cur.Cert)),
		NextPEM: string(pki.EncodeCertificate(next.Cert)), Meta: meta}, nil
}

// FinishRotation makes the rotation's new CA the CA of name. The old key
// is deleted after the directory is committed, or kept (keepOld) and
// listed in Retired.
func (s *Store) FinishRotation(name string, keepOld bool) (*CA, error) {
	return s.rotationStep(name, "rotate-finish", nil, nil, func(cur *CA) (*plan, error) {
		if cur.Next == nil {
			return nil, fmt.Errorf("CA %s: %w", name, ErrNoRotation)
		}
		return finishPlan(cur, keepOld), nil
	})
}

func finishPlan(cur *CA, keepOld bool) *plan {
	old := cur.KeyRef()
	meta := cur.Meta
	meta.KeyStore, meta.KeyID, meta.Created = cur.Next.KeyStore, cur.Next.KeyID, cur.Next.Created
	meta.Next, meta.Imported = nil, false
	p := plan{New: keystore.Ref{Store: meta.KeyStore, ID: meta.KeyID}, CertPEM: string(pki.EncodeCertificate(cur.NextCert)), Meta: meta}
	if keepOld {
		p.Meta.Retired = append(append([]keystore.Ref{}, cur.Retired...), old)
	} else {
		p.Old = &old
	}
	return &p
}

// AbortRotation drops the rotation's new CA: the directory stops naming
// it, then its key is deleted. The current CA is untouched.
func (s *Store) AbortRotation(name string) (*CA, error) {
	return s.rotationStep(name, "rotate-abort", nil, nil, func(cur *CA) (*plan, error) {
		if cur.Next == nil {
			return nil, nil
		}
		next := keystore.Ref{Store: cur.Next.KeyStore, ID: cur.Next.KeyID}
		meta := cur.Meta
		meta.Next = nil
		return &plan{Old: &next, New: cur.KeyRef(), CertPEM: string(pki.EncodeCertificate(cur.Cert)), Meta: meta}, nil
	})
}

// rotationStep runs one step of a rotation under the state lock: build
// says, from the CA as it is now, what the step changes (nil: nothing, the
// step is already done), and the change runs through the journal; key is
// the key it stores, if any.
func (s *Store) rotationStep(name, op string, key crypto.Signer, passphrase []byte, build func(cur *CA) (*plan, error)) (*CA, error) {
	release, err := s.j.Lock()
	if err != nil {
		return nil, err
	}
	defer release()
	cur, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	p, err := build(cur)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return cur, nil
	}
	if err := s.run(op, name, *p, key, passphrase); err != nil {
		return nil, err
	}
	return s.Get(name)
}

// NextSigner loads the key of the rotation's new CA.
func (s *Store) NextSigner(ca *CA, passphrase []byte) (*pki.CA, error) {
	if ca.NextCert == nil || ca.Next == nil {
		return nil, fmt.Errorf("CA %s: %w", ca.Name, ErrNoRotation)
	}
	ks, err := s.keys.Open(ca.Next.KeyStore, passphrase)
	if err != nil {
		return nil, fmt.Errorf("CA %s: the new CA's key: %w", ca.Name, err)
	}
	key, err := ks.Get(ca.Next.KeyID)
	if err != nil {
		return nil, fmt.Errorf("CA %s: the new CA's key: %w", ca.Name, err)
	}
	return pki.LoadCA(ca.NextCert, key)
}

// Bundle is the CA certificates to trust for name now: the CA, and during
// a rotation the new one after it.
func (ca *CA) Bundle() []*x509.Certificate {
	if ca.NextCert != nil {
		return []*x509.Certificate{ca.Cert, ca.NextCert}
	}
	return []*x509.Certificate{ca.Cert}
}
