package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
)

// ClientTLS is the TLS configuration every docker-tls client uses to reach
// an engine or a CA service: it trusts ca only (never the system roots),
// checks serverName against the server's SANs, needs TLS 1.2 or later, and
// presents client when it is not nil.
func ClientTLS(ca *x509.Certificate, serverName string, client *tls.Certificate) *tls.Config {
	return ClientTLSBundle([]*x509.Certificate{ca}, serverName, client)
}

// ClientTLSBundle is ClientTLS trusting every CA of a bundle (a ca.pem with
// several certificates, as the docker CLI reads it: during a CA rotation,
// old and new).
func ClientTLSBundle(cas []*x509.Certificate, serverName string, client *tls.Certificate) *tls.Config {
	roots := x509.NewCertPool()
	for _, ca := range cas {
		if ca != nil {
			roots.AddCert(ca)
		}
	}
	cfg := &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	return cfg
}

// TLSCertificate pairs a certificate with its key for crypto/tls, or
// returns nil when either is missing.
func TLSCertificate(cert *x509.Certificate, key crypto.Signer) *tls.Certificate {
	if cert == nil || key == nil {
		return nil
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}
