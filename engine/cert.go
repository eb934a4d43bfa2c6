package engine

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// ServerFiles issues a server certificate from ca for sans, with a new key
// made in memory, and returns the three files dockerd reads from tlsDir;
// the key's file is marked secret and is only ever written on the host.
func ServerFiles(ca pki.Issuer, sans pki.SANs, life time.Duration, tlsDir string) ([]File, *x509.Certificate, error) {
	key, err := pki.GenerateKey(pki.DefaultKeyType)
	if err != nil {
		return nil, nil, err
	}
	cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans, PublicKey: key.Public(), Lifetime: life})
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := pki.EncodePrivateKey(key, nil)
	if err != nil {
		return nil, nil, err
	}
	p := TLSPathsIn(tlsDir)
	return []File{
		{Path: p.CA, Data: pki.EncodeCertificate(ca.Certificate()), Mode: 0o644},
		{Path: p.Cert, Data: pki.EncodeCertificate(cert), Mode: 0o644},
		{Path: p.Key, Data: keyPEM, Mode: 0o600, Secret: true},
	}, cert, nil
}

// Serial is a certificate's serial number as records show it (hex).
func Serial(c *x509.Certificate) string { return fmt.Sprintf("%x", c.SerialNumber) }
