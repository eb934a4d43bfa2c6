package certdir

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
)

// ServerRenewal is how a server directory is re-issued.
type ServerRenewal struct {
	// SANs replace the certificate's names; none keeps them.
	SANs pki.SANs
	// Rekey makes a new key of the same type; otherwise the key stays.
	Rekey bool
	// Lifetime of the new certificate; 0 is the old one's.
	Lifetime time.Duration
}

// ErrOtherCA is a server directory whose certificate another CA issued.
var ErrOtherCA = errors.New("was not issued by this CA")

// ServerDir is a server directory as read: its certificate and key.
type ServerDir struct {
	Dir  string
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Renew re-issues the directory's server certificate from ca (whose
// certificate is caCert, written as the directory's ca.pem), in place:
// the new files are written beside the old ones, then renamed over them.
// It returns the new certificate.
func (d *ServerDir) Renew(caCert *x509.Certificate, ca *pki.CA, r ServerRenewal) (*x509.Certificate, error) {
	dir, old, key := d.Dir, d.Cert, d.Key
	if err := old.CheckSignatureFrom(caCert); err != nil {
		return nil, fmt.Errorf("%s %w", filepath.Join(dir, ServerCertFile), ErrOtherCA)
	}
	sans := r.SANs
	if sans.Len() == 0 {
		sans = pki.CertSANs(old)
	}
	if r.Rekey {
		kt, err := pki.KeyTypeOf(key.Public())
		if err != nil {
			return nil, err
		}
		if key, err = pki.GenerateKey(kt); err != nil {
			return nil, err
		}
	}
	life := r.Lifetime
	if life == 0 {
		life = old.NotAfter.Sub(old.NotBefore) - pki.Backdate
	}
	cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans, PublicKey: key.Public(), Lifetime: life})
	if err != nil {
		return nil, err
	}
	files := []File{{ServerCertFile, pki.EncodeCertificate(cert), fsutil.PublicFile}, {CAFile, pki.EncodeCertificate(caCert), fsutil.PublicFile}}
	if r.Rekey {
		kp, err := pki.EncodePrivateKey(key, nil)
		if err != nil {
			return nil, err
		}
		files = append([]File{{ServerKeyFile, kp, fsutil.PrivateFile}}, files...)
	}
	if err := Replace(dir, files); err != nil {
		return nil, err
	}
	return cert, nil
}

// ReadServer reads a server directory's certificate and key.
func ReadServer(dir string) (*ServerDir, error) {
	certPEM, err := fsutil.ReadSmall(filepath.Join(dir, ServerCertFile), 1<<20)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	keyPEM, err := fsutil.ReadSmall(filepath.Join(dir, ServerKeyFile), 1<<20)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	cert, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ServerCertFile, err)
	}
	key, err := pki.ParsePrivateKey(keyPEM, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ServerKeyFile, err)
	}
	return &ServerDir{Dir: dir, Cert: cert, Key: key}, nil
}

// Check reads the directory's ca.pem and checks that its files fit
// together: the key is the certificate's, and the certificate is a server
// certificate from that CA, valid now. It returns the CA.
func (d *ServerDir) Check(now time.Time) (*x509.Certificate, error) {
	data, err := fsutil.ReadSmall(filepath.Join(d.Dir, CAFile), 1<<20)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Dir, err)
	}
	ca, err := pki.ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAFile, err)
	}
	if err := pki.CheckKeyMatch(d.Cert, d.Key); err != nil {
		return nil, err
	}
	if err := pki.VerifyLeaf(d.Cert, ca, pki.ServerProfile, now); err != nil {
		return nil, fmt.Errorf("%s: %w", ServerCertFile, err)
	}
	return ca, nil
}
