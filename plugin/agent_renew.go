package plugin

import (
	"context"
	"path/filepath"
	"time"

	"github.com/docker-tls/docker-tls/agent"
)

// agentRenew renews one context for the agent, as docker tls renew would,
// and records a failure where ls and verify find it. No command prints
// that failure, so it is hinted here (renewOne's errors already are; the
// context's lookup error is not): the agent's log, agent status, ls and
// verify show it as it is.
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
	err = hint(a.configDir(), err)
	a.renewFailures().Failed(name, err, time.Now())
	return time.Time{}, err
}

// renewFailures are the records of failing automatic renewals.
func (a *app) renewFailures() agent.Failures {
	return agent.Failures{Dir: filepath.Join(a.configDir(), "tls", "renewals")}
}
