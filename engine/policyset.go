package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/docker-tls/docker-tls/authz"
	"github.com/docker-tls/docker-tls/policy"
)

// PolicySet is one engine's policy change, as engine policy set asks it.
type PolicySet struct {
	Engine Record
	Edit   authz.Edit
	// Admins are the identities one of which must stay an admin (this
	// laptop's for the engine); Force skips that check and replaces a
	// policy file the host cannot read.
	Admins []policy.Identity
	Force  bool
	// Binary is the plugin to install; CRL the CA's revocation list (PEM),
	// nil when this laptop does not hold the CA.
	Binary, CRL []byte
}

// PolicySetResult is what SetPolicy did.
type PolicySetResult struct {
	Config *authz.Config
	// Notes are what the edit could not do (a revoked grant not there).
	Notes []string
	// Plan is what changed on the host; UpToDate when nothing did.
	Plan *PolicyPlan
}

// ErrNoPolicyYet is a change to a host that has no policy and gives no
// grant.
var ErrNoPolicyYet = errors.New("the engine has no policy yet")

// UnreadablePolicyError is a policy file on the host that does not parse
// or check; SetPolicy replaces it only with Force.
type UnreadablePolicyError struct{ Err error }

func (e *UnreadablePolicyError) Error() string {
	return fmt.Sprintf("the policy on the host (%s) does not read (%v)", PolicyPath, e.Err)
}

func (e *UnreadablePolicyError) Unwrap() error { return e.Err }

// SetPolicy reads the host's policy, makes the edit, checks it (grants,
// an admin kept), and puts it in force (PlanPolicy, ApplyPolicy); a host
// that enforces it already only gets the revocation list.
func SetPolicy(ctx context.Context, s Shell, ps PolicySet) (*PolicySetResult, error) {
	f, err := InspectPolicy(ctx, s)
	if err != nil {
		return nil, err
	}
	cfg := &authz.Config{}
	if f.Config != nil {
		if cfg, err = authz.ParseConfig(f.Config); err != nil {
			if !ps.Force {
				return nil, &UnreadablePolicyError{Err: err}
			}
			cfg = &authz.Config{}
		}
	}
	if f.Config == nil && len(ps.Edit.Grants) == 0 {
		return nil, ErrNoPolicyYet
	}
	res := &PolicySetResult{Config: cfg, Notes: ps.Edit.Apply(cfg)}
	cfg.Engine, cfg.CAs = ps.Engine.Name, TLSPathsIn(ps.Engine.TLSDir).CA
	if err := cfg.Policy.Check(); err != nil {
		return nil, err
	}
	if err := cfg.Policy.KeepsAdmin(ps.Admins); err != nil && !ps.Force {
		return nil, err
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	if res.Plan, err = PlanPolicy(f, PolicyRequest{Config: append(data, '\n'), Binary: ps.Binary, CRL: ps.CRL}); err != nil {
		return nil, err
	}
	if res.Plan.UpToDate() {
		if ps.CRL != nil {
			if _, err := PushCRL(ctx, s, ps.CRL); err != nil {
				return nil, err
			}
		}
		if f.Pending {
			// An earlier set was killed after it had put this policy in
			// force: its run is over, and its backup would roll a later
			// change back past it.
			return res, finishPolicyRun(ctx, s)
		}
		return res, nil
	}
	return res, ApplyPolicy(ctx, s, res.Plan)
}
