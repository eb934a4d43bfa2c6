// Package policy owns who may do what on an engine: the roles, the grants
// that give them to identities, and the role each Docker API call needs.
//
// An identity is what its client certificate says (see pki.GroupsOf): the
// user is the CN, the groups are the Organization values. A grant gives a
// role to a subject: "user:CN", "group:NAME", or "*" (any certificate the
// engine's CA issued). Roles are ordered and the highest one granted to any
// of an identity's subjects wins:
//
//   - viewer reads: list and inspect, logs, events, stats, version, info,
//     disk usage; never exec, attach, copy or export, never a write;
//   - operator does everything that does not give root on the host;
//   - admin does everything.
//
// What gives root on the host is a container that is privileged, joins a
// host namespace, bind-mounts a host path (also through a local volume
// with o=bind), gets devices, added capabilities or an unconfined security
// profile; a privileged exec; plugin installs; swarm and node changes. A
// call whose body the engine did not pass on (too large) cannot be shown
// harmless and needs admin: the policy fails closed.
//
// The package is pure: no I/O, so the plugin on the engine and the laptop
// that sets the policy judge a call the same way.
package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/docker-tls/docker-tls/pki"
)

// Role is what an identity may do; the zero Role is none.
type Role int

// Roles, in order: a higher one may do all a lower one may.
const (
	None Role = iota
	Viewer
	Operator
	Admin
)

var roleNames = [...]string{"none", "viewer", "operator", "admin"}

func (r Role) String() string {
	if r < None || r > Admin {
		return fmt.Sprintf("role(%d)", int(r))
	}
	return roleNames[r]
}

// ParseRole reads viewer, operator or admin.
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames[1:] {
		if s == n {
			return Role(i + 1), nil
		}
	}
	return None, fmt.Errorf("role %q: use viewer, operator or admin", s)
}

// MarshalText writes the role's name, as policies store it.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a role's name.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	*r = v
	return err
}

// Subject is who a grant is for: "user:CN", "group:NAME" or "*".
type Subject string

// Everyone is the subject of any certificate the engine's CA issued.
const Everyone Subject = "*"

// ParseSubject checks a subject.
func ParseSubject(s string) (Subject, error) {
	if s == string(Everyone) {
		return Everyone, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok || (kind != "user" && kind != "group") {
		return "", fmt.Errorf("subject %q: give user:CN, group:NAME or *", s)
	}
	if name == "" || strings.TrimSpace(name) != name {
		return "", fmt.Errorf("subject %q: the name is empty or has spaces at its start or end", s)
	}
	if err := pki.CheckName(kind+" name", name); err != nil {
		return "", fmt.Errorf("subject %q: %w", s, err)
	}
	return Subject(s), nil
}

// Grant gives Role to Subject.
type Grant struct {
	Subject Subject `json:"subject"`
	Role    Role    `json:"role"`
}

// ParseGrant reads SUBJECT=ROLE, as --grant takes it.
func ParseGrant(s string) (Grant, error) {
	subj, role, ok := strings.Cut(s, "=")
	if !ok {
		return Grant{}, fmt.Errorf("--grant %q: give SUBJECT=ROLE, such as user:alice=admin or group:ops=operator", s)
	}
	sub, err := ParseSubject(subj)
	if err != nil {
		return Grant{}, fmt.Errorf("--grant %q: %w", s, err)
	}
	r, err := ParseRole(role)
	if err != nil {
		return Grant{}, fmt.Errorf("--grant %q: %w", s, err)
	}
	return Grant{Subject: sub, Role: r}, nil
}

// Identity is who is calling, from their client certificate.
type Identity struct {
	User   string
	Groups []string
}

// Subjects are the subjects an identity matches: its user, its groups and
// Everyone.
func (id Identity) Subjects() []Subject {
	out := []Subject{Subject("user:" + id.User)}
	for _, g := range id.Groups {
		out = append(out, Subject("group:"+g))
	}
	return append(out, Everyone)
}

// Policy is an engine's grants.
type Policy struct {
	Grants []Grant `json:"grants"`
}

// String is the grant as --grant takes it: SUBJECT=ROLE.
func (g Grant) String() string { return string(g.Subject) + "=" + g.Role.String() }

// String is the grants as --grant takes them, separated by spaces.
func (p Policy) String() string {
	s := make([]string, len(p.Grants))
	for i, g := range p.Grants {
		s[i] = g.String()
	}
	return strings.Join(s, " ")
}

// Set adds or replaces the grant of g's subject.
func (p *Policy) Set(g Grant) {
	for i := range p.Grants {
		if p.Grants[i].Subject == g.Subject {
			p.Grants[i].Role = g.Role
			return
		}
	}
	p.Grants = append(p.Grants, g)
}

// Remove drops the grant of subject, and says whether there was one.
func (p *Policy) Remove(s Subject) bool {
	n := len(p.Grants)
	p.Grants = slices.DeleteFunc(p.Grants, func(g Grant) bool { return g.Subject == s })
	return len(p.Grants) != n
}

// RoleOf is the highest role granted to any of id's subjects, and the
// grant that gives it (the rule an audit line names).
func (p *Policy) RoleOf(id Identity) (Role, Grant) {
	best, by := None, Grant{}
	subjects := id.Subjects()
	for _, g := range p.Grants {
		if g.Role > best && slices.Contains(subjects, g.Subject) {
			best, by = g.Role, g
		}
	}
	return best, by
}

// Check refuses a policy that cannot be applied: a subject or role that
// does not parse, or a subject granted twice.
func (p *Policy) Check() error {
	seen := map[Subject]bool{}
	for _, g := range p.Grants {
		if _, err := ParseSubject(string(g.Subject)); err != nil {
			return err
		}
		if g.Role <= None || g.Role > Admin {
			return fmt.Errorf("the grant to %s has no role", g.Subject)
		}
		if seen[g.Subject] {
			return fmt.Errorf("%s is granted twice", g.Subject)
		}
		seen[g.Subject] = true
	}
	return nil
}

// ErrNoAdmin is a policy that would leave none of the given identities an
// admin: nobody could change it again from here.
var ErrNoAdmin = errors.New("no admin left")

// KeepsAdmin says whether one of ids is an admin under p.
func (p *Policy) KeepsAdmin(ids []Identity) error {
	for _, id := range ids {
		if r, _ := p.RoleOf(id); r == Admin {
			return nil
		}
	}
	return ErrNoAdmin
}
