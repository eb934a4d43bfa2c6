package plugin

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/pki"
)

// recordingIssuer issues from a CA on this laptop and records every
// certificate in the CA's inventory (its database: $DOCKER_TLS_CA_DB, else
// the CA's own SQLite file) before handing it out, so that ca revoke CN
// finds its serials with no service running. A certificate that cannot be
// recorded is not issued.
type recordingIssuer struct {
	ctx    context.Context
	a      *app
	stored *castore.CA
	ca     *pki.CA
	// source says where the certificate goes: "context NAME", "engine
	// NAME", "file DIR".
	source string
}

// recorded is ca, recording what it issues under source.
func (a *app) recorded(ctx context.Context, stored *castore.CA, ca *pki.CA, source string) pki.Issuer {
	return &recordingIssuer{ctx: ctx, a: a, stored: stored, ca: ca, source: source}
}

func (r *recordingIssuer) Certificate() *x509.Certificate { return r.ca.Cert }

func (r *recordingIssuer) Issue(req pki.IssueRequest) (*x509.Certificate, error) {
	cert, err := r.ca.Issue(req)
	if err != nil {
		return nil, err
	}
	db, err := dbOptions{}.open(r.ctx, r.a, r.stored)
	if err == nil {
		err = db.RecordCertificate(r.ctx, cert, r.source, time.Now())
		db.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("CA %q's inventory could not record the certificate, so it is not issued: %w", r.stored.Name, err)
	}
	return cert, nil
}
