package renewal

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
)

// enrolled are the contexts that enrolled with a CA service (docker tls
// enroll), in agent mode or not, with what they trust and hold; the ones
// whose files cannot be read are left out (ls and verify name them).
func enrolled(store *contexts.Store, each func(c *contexts.Context, trust []*x509.Certificate, cert *x509.Certificate)) error {
	list, _, err := store.List()
	if err != nil {
		return err
	}
	for _, c := range list {
		if !c.Managed() || c.TLS.CAURL == "" {
			continue
		}
		caPEM, certPEM, err := store.PEMs(c)
		if err != nil {
			continue
		}
		cert, err := pki.ParseCertificate(certPEM)
		if err != nil {
			continue
		}
		trust, _ := pki.ParseCertificates(caPEM)
		each(c, trust, cert)
	}
	return nil
}

// Due lists the contexts the agent renews by itself, those enrolled with a
// CA service, each due when the service accepts a renewal (the last third
// of the certificate's life).
func Due(store *contexts.Store) ([]agent.Due, error) {
	var out []agent.Due
	err := enrolled(store, func(c *contexts.Context, _ []*x509.Certificate, cert *x509.Certificate) {
		issued := cert.NotBefore.Add(pki.Backdate)
		if issued.After(cert.NotAfter) {
			issued = cert.NotBefore
		}
		out = append(out, agent.Due{Name: c.Name, At: remoteca.RenewalStart(issued, cert.NotAfter), NotAfter: cert.NotAfter, SignIn: c.TLS.SignIn})
	})
	return out, err
}

// BehindRotation asks the CA service of every enrolled context (once per
// service) whether its CA is being rotated, and names the contexts whose
// certificate is not yet from the new CA: the agent renews them at once,
// so laptops follow a rotation before the old CA is retired.
func BehindRotation(ctx context.Context, store *contexts.Store) []string {
	health := map[string]*remoteca.Health{}
	var names []string
	_ = enrolled(store, func(c *contexts.Context, trust []*x509.Certificate, cert *x509.Certificate) {
		if len(trust) == 0 {
			return
		}
		h, seen := health[c.TLS.CAURL]
		if !seen {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			h, _ = (&remoteca.Client{URL: c.TLS.CAURL, Timeout: 5 * time.Second, Attempts: 1}).Health(cctx, trust)
			cancel()
			health[c.TLS.CAURL] = h
		}
		if h == nil || h.Next == "" {
			return
		}
		for _, t := range trust {
			if remoteca.FingerprintHex(t.Raw) == h.Next && cert.CheckSignatureFrom(t) == nil {
				return
			}
		}
		names = append(names, c.Name)
	})
	return names
}
