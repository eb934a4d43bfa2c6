package plugin

import (
	"context"
	"path/filepath"
	"time"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
)

// agentRenewals lists the contexts the agent renews by itself: those that
// enrolled with a CA service (docker tls enroll), in agent mode or not, due
// when the service accepts a renewal (the last third of the certificate's
// life).
func (a *app) agentRenewals() ([]agent.Due, error) {
	store := a.contexts()
	list, _, err := store.List()
	if err != nil {
		return nil, err
	}
	var out []agent.Due
	for _, c := range list {
		if !c.Managed() || c.TLS.CAURL == "" {
			continue
		}
		_, certPEM, err := store.PEMs(c)
		if err != nil {
			continue
		}
		cert, err := pki.ParseCertificate(certPEM)
		if err != nil {
			continue
		}
		issued := cert.NotBefore.Add(pki.Backdate)
		if issued.After(cert.NotAfter) {
			issued = cert.NotBefore
		}
		out = append(out, agent.Due{Name: c.Name, At: remoteca.RenewalStart(issued, cert.NotAfter), NotAfter: cert.NotAfter})
	}
	return out, nil
}

// agentRotationCheck asks the CA service of every enrolled context (once
// per service) whether its CA is being rotated, and names the contexts
// whose certificate is not yet from the new CA: the agent renews them at
// once, so laptops follow a rotation before the old CA is retired.
func (a *app) agentRotationCheck(ctx context.Context) []string {
	store := a.contexts()
	list, _, err := store.List()
	if err != nil {
		return nil
	}
	health := map[string]*remoteca.Health{}
	var names []string
	for _, c := range list {
		if !c.Managed() || c.TLS.CAURL == "" {
			continue
		}
		caPEM, certPEM, err := store.PEMs(c)
		if err != nil {
			continue
		}
		trust, err := pki.ParseCertificates(caPEM)
		if err != nil || len(trust) == 0 {
			continue
		}
		cert, err := pki.ParseCertificate(certPEM)
		if err != nil {
			continue
		}
		h, seen := health[c.TLS.CAURL]
		if !seen {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			h, _ = (&remoteca.Client{URL: c.TLS.CAURL, Timeout: 5 * time.Second, Attempts: 1}).Health(cctx, trust)
			cancel()
			health[c.TLS.CAURL] = h
		}
		if h == nil || h.Next == "" {
			continue
		}
		fromNext := false
		for _, t := range trust {
			if remoteca.FingerprintHex(t.Raw) == h.Next && cert.CheckSignatureFrom(t) == nil {
				fromNext = true
			}
		}
		if !fromNext {
			names = append(names, c.Name)
		}
	}
	return names
}

// agentRenew renews one context for the agent, as docker tls renew would,
// and records a failure where ls and verify find it.
func (a *app) agentRenew(ctx context.Context, name string) (time.Time, error) {
	c, err := a.contexts().Managed(name)
	if err == nil {
		cert, rerr := a.renewOne(ctx, c, renewOptions{})
		if rerr == nil {
			a.renewFailures().Clear(name)
			return cert.NotAfter, nil
		}
		err = rerr
	}
	a.renewFailures().Failed(name, err, time.Now())
	return time.Time{}, err
}

// renewFailures are the records of failing automatic renewals.
func (a *app) renewFailures() agent.Failures {
	return agent.Failures{Dir: filepath.Join(a.configDir(), "tls", "renewals")}
}
