package agent

import (
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/pki"
)

// Endpoints are the agent-mode contexts of list as the agent serves them.
// A context whose certificates do not parse is left out: verify and ls
// say what is wrong with it, and the agent serves the others.
func Endpoints(list []*contexts.Context) []Endpoint {
	var eps []Endpoint
	for _, c := range list {
		if !c.AgentMode() {
			continue
		}
		// One CA, or a bundle of two while it is rotated: both are
		// trusted, as the docker CLI trusts every CA of a ca.pem.
		cas, err := pki.ParseCertificates([]byte(c.TLS.CAPEM))
		if err != nil || len(cas) == 0 {
			continue
		}
		cert, err := pki.ParseCertificate([]byte(c.TLS.CertPEM))
		if err != nil {
			continue
		}
		eps = append(eps, Endpoint{Name: c.Name, Remote: c.TLS.Remote, CAs: cas, Cert: cert, KeyStore: c.TLS.KeyStore, KeyID: c.TLS.KeyID})
	}
	return eps
}
