// Package authz is the engine side of an engine's policy: the Docker
// authorization plugin that dockerd asks before every API call. It runs on
// the engine's host (the same docker-tls binary), reads the policy the
// laptop set (package policy) and the CA's revocation list, and answers
// allow or deny with one sentence, which the docker CLI shows the caller.
//
// Who calls is the client certificate dockerd verified (its
// RequestPeerCertificates): the CN is the user and the Organization values
// the groups. A revoked certificate is refused whatever its role. A call
// with no certificate comes through the host's own unix socket and follows
// the policy's Local setting. Every decision is one audit record.
package authz

import (
	"crypto/x509"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/policy"
)

// Config is what the plugin enforces: the policy, and what it does with
// calls that carry no certificate.
type Config struct {
	Engine string        `json:"engine"` // the engine's name on the laptops, for the fix in a refusal
	Policy policy.Policy `json:"policy"`
	// LocalDeny refuses calls without a client certificate (the host's own
	// unix socket); by default they are allowed.
	LocalDeny bool `json:"localDeny,omitempty"`
	// CAs is the engine's CA bundle (the ca.pem dockerd verifies clients
	// with): the CAs whose revocation lists the plugin takes.
	CAs string `json:"cas,omitempty"`
	// CRLURL is where the plugin pulls the revocation list every
	// CRLInterval (docker tls ca serve's /crl); empty: lists are pushed.
	CRLURL      string `json:"crlURL,omitempty"`
	CRLInterval string `json:"crlInterval,omitempty"`
	// Digest is the SHA-256 of the file the config was read from (hex):
	// what the plugin's status reports, so that a change is known to be in
	// force before dockerd is told to use it.
	Digest string `json:"-"`
}

// Call is one API request as dockerd passes it on.
type Call struct {
	Method  string
	URI     string
	Body    []byte
	Headers map[string]string
	Certs   []*x509.Certificate
}

// Decision is the answer to a call, and its audit record.
type Decision struct {
	Time    time.Time `json:"time"`
	Allow   bool      `json:"allow"`
	User    string    `json:"user,omitempty"`
	Groups  []string  `json:"groups,omitempty"`
	Serial  string    `json:"serial,omitempty"`
	Method  string    `json:"method"`
	Path    string    `json:"path"`
	Role    string    `json:"role"`
	Needs   string    `json:"needs"`
	Rule    string    `json:"rule"`
	Message string    `json:"-"`
}

// Decider judges calls under a Config.
type Decider struct {
	Rules *policy.Rules
	// Revoked says whether the certificate's CA revoked it, under the CA
	// bundle the policy names; nil: none is.
	Revoked func(caPath string, leaf *x509.Certificate) bool
}

// Decide judges c under cfg at now.
func (d *Decider) Decide(cfg *Config, c Call, now time.Time) Decision {
	dec := Decision{Time: now.UTC(), Method: c.Method, Path: pathOf(c.URI)}
	need := d.Rules.Required(policy.Call{Method: c.Method, URI: c.URI, Body: c.Body, BodyTooLarge: bodyWithheld(c)})
	dec.Needs = need.Role.String()
	if len(c.Certs) == 0 {
		dec.Role, dec.Rule = "local", "local"
		if cfg.LocalDeny {
			dec.Message = "calls without a client certificate (the host's own socket) are refused on this engine"
			return dec
		}
		dec.Allow = true
		return dec
	}
	leaf := c.Certs[0]
	id := policy.Identity{User: leaf.Subject.CommonName, Groups: pki.GroupsOf(leaf)}
	dec.User, dec.Groups, dec.Serial = id.User, id.Groups, leaf.SerialNumber.Text(16)
	if d.Revoked != nil && d.Revoked(cfg.CAs, leaf) {
		dec.Role, dec.Rule = "revoked", "crl"
		dec.Message = fmt.Sprintf("the certificate of %s (serial %s) is revoked: ask the CA's operator for a new one", who(id), short(dec.Serial))
		return dec
	}
	role, grant := cfg.Policy.RoleOf(id)
	dec.Role, dec.Rule = role.String(), string(grant.Subject)
	if role >= need.Role {
		dec.Allow = true
		return dec
	}
	dec.Rule = "needs " + need.Role.String()
	engine := cfg.Engine
	if engine == "" {
		engine = "ENGINE"
	}
	have := "no role"
	if role != policy.None {
		have = "the role " + role.String()
	}
	dec.Message = fmt.Sprintf("%s has %s on this engine, and %s %s needs %s (%s): an admin can run docker tls engine policy set %s --grant user:%s=%s",
		who(id), have, c.Method, dec.Path, need.Role, need.Reason, engine, id.User, need.Role)
	return dec
}

func who(id policy.Identity) string {
	if len(id.Groups) == 0 {
		return strconv.Quote(id.User)
	}
	return fmt.Sprintf("%q (groups %s)", id.User, strings.Join(id.Groups, ", "))
}

func short(serial string) string {
	if len(serial) > 12 {
		return serial[:12] + "…"
	}
	return serial
}

// pathOf is the URI without its query (which may carry a filter, never
// needed in the audit).
func pathOf(uri string) string {
	p, _, _ := strings.Cut(uri, "?")
	return p
}

// bodyWithheld says whether the request had a body that dockerd did not
// pass on: it sends a body only when it is small and JSON.
func bodyWithheld(c Call) bool {
	if len(c.Body) > 0 {
		return false
	}
	for k, v := range c.Headers {
		switch strings.ToLower(k) {
		case "content-length":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
				return true
			}
		case "transfer-encoding":
			if strings.Contains(strings.ToLower(v), "chunked") {
				return true
			}
		}
	}
	return false
}
