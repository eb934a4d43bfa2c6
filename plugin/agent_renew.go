package plugin

import (
	"context"
	"path/filepath"
	"time"

	"github.com/docker-tls/docker-tls/agent"
)

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
