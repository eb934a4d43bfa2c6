package castore

import (
	"context"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// Follow rereads the CA was every interval until ctx ends and, when a
// rotation adds, promotes or drops its new CA, opens the signers with
// passphrase and hands them to apply (next is nil outside a rotation). An
// error reading or opening the CA, or from apply, goes to failed, and the
// next tick tries again. A long-running signer (docker tls ca serve)
// follows a rotation this way without a restart.
func (s *Store) Follow(ctx context.Context, was *CA, passphrase []byte, interval time.Duration, apply func(ca, next *pki.CA) error, failed func(error)) {
	last := rotationStamp(was)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now, err := s.Get(was.Name)
		if err != nil || rotationStamp(now) == last {
			continue
		}
		ca, err := s.Signer(now, passphrase)
		var next *pki.CA
		if err == nil && now.NextCert != nil {
			next, err = s.NextSigner(now, passphrase)
		}
		if err == nil {
			err = apply(ca, next)
		}
		if err != nil {
			failed(err)
			continue
		}
		last = rotationStamp(now)
	}
}

// rotationStamp changes when the CA's certificate or its new one does.
func rotationStamp(c *CA) string {
	s := pki.Fingerprint(c.Cert)
	if c.NextCert != nil {
		s += "+" + pki.Fingerprint(c.NextCert)
	}
	return s
}
