package authz

import (
	"time"

	"github.com/docker-tls/docker-tls/policy"
)

// Edit is a change to an engine's policy, as engine policy set gives it.
type Edit struct {
	Grants  []policy.Grant
	Revokes []policy.Subject
	// Local is "allow", "deny" or "" (unchanged).
	Local string
	// CRLURL is where to pull the revocation list; "none" stops pulling,
	// "" leaves it.
	CRLURL      string
	CRLInterval time.Duration
}

// Apply makes the edit to cfg, and says what it could not do (a revoked
// grant that was not there).
func (e Edit) Apply(cfg *Config) (notes []string) {
	for _, g := range e.Grants {
		cfg.Policy.Set(g)
	}
	for _, s := range e.Revokes {
		if !cfg.Policy.Remove(s) {
			notes = append(notes, string(s)+" had no grant")
		}
	}
	if e.Local != "" {
		cfg.LocalDeny = e.Local == "deny"
	}
	switch e.CRLURL {
	case "":
	case "none":
		cfg.CRLURL, cfg.CRLInterval = "", ""
	default:
		cfg.CRLURL = e.CRLURL
	}
	if e.CRLInterval != 0 {
		cfg.CRLInterval = e.CRLInterval.String()
	}
	return notes
}
