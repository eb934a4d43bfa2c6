package castore

import (
	"errors"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

// TestRotationSteps: a new CA beside the current one, both able to sign;
// finishing makes it the CA and deletes (or keeps) the old key; aborting
// drops it and its key, and leaves the current CA as it was.
func TestRotationSteps(t *testing.T) {
	s, keys := newStore(t)
	first := newCA(t)
	cur, err := s.Create("team", first, CreateOptions{KeyStore: keystore.KindFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishRotation("team", false); !errors.Is(err, ErrNoRotation) {
		t.Fatalf("finish without a rotation: %v", err)
	}
	second := newCA(t)
	rot, err := s.StartRotation("team", second, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !rot.Cert.Equal(first.Cert) || !rot.NextCert.Equal(second.Cert) || len(rot.Bundle()) != 2 {
		t.Fatalf("during the rotation: current %v, next %v", rot.Cert.Subject, rot.NextCert)
	}
	// Starting again keeps the first new CA.
	if again, err := s.StartRotation("team", newCA(t), nil, time.Now()); err != nil || !again.NextCert.Equal(second.Cert) {
		t.Fatalf("second start: %v", err)
	}
	for _, signer := range []func() (*pki.CA, error){
		func() (*pki.CA, error) { return s.Signer(rot, nil) },
		func() (*pki.CA, error) { return s.NextSigner(rot, nil) },
	} {
		ca, err := signer()
		if err != nil {
			t.Fatal(err)
		}
		if err := pki.CheckKeyMatch(ca.Cert, ca.Key); err != nil {
			t.Fatal(err)
		}
	}
	done, err := s.FinishRotation("team", true)
	if err != nil {
		t.Fatal(err)
	}
	if !done.Cert.Equal(second.Cert) || done.NextCert != nil || len(done.Retired) != 1 || done.Retired[0] != cur.KeyRef() {
		t.Fatalf("after finishing with --keep-old: %+v", done.Meta)
	}
	if _, err := keys.Get(cur.KeyID); err != nil {
		t.Fatalf("the retired key was not kept: %v", err)
	}

	// A second rotation, aborted: the new key goes, the CA stays.
	third := newCA(t)
	rot, err = s.StartRotation("team", third, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nextID := rot.Next.KeyID
	back, err := s.AbortRotation("team")
	if err != nil {
		t.Fatal(err)
	}
	if !back.Cert.Equal(second.Cert) || back.NextCert != nil || back.KeyID != done.KeyID {
		t.Fatalf("after abort: %+v", back.Meta)
	}
	if _, err := keys.Get(nextID); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("the aborted CA's key is still there: %v", err)
	}
	// A third, finished without --keep-old: the old key is deleted.
	if _, err := s.StartRotation("team", newCA(t), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishRotation("team", false); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Get(done.KeyID); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("the old key survived: %v", err)
	}
}
