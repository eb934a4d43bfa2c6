package probe

import (
	"context"
	"net"
	"net/http"
	"time"
)

// checkAgent asks the engine for /_ping through the agent's socket, the way
// the docker CLI reaches an agent-mode context.
func checkAgent(ctx context.Context, r *Report, socket string, timeout time.Duration) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		r.add("agent", Fail, "docker tls agent", "the docker-tls agent is not running (nothing answers on %s), so the docker CLI cannot use this context", socket)
		return
	}
	defer conn.Close()
	code, msg, err := ping(conn, 2*timeout)
	switch {
	case err != nil:
		r.add("agent", Fail, "see the agent's log (docker tls agent status shows where it runs)",
			"the agent accepted the connection but could not relay it to the engine (%s): the key may be unavailable or the engine unreachable", shortErr(err))
	case code == http.StatusBadGateway && msg != "":
		// The agent could not reach the engine or load the key, and says why.
		r.add("agent", Fail, "", "the agent cannot relay: %s", msg)
	default:
		r.add("agent", OK, "", "the agent relays to the engine (/_ping: %d %s)", code, http.StatusText(code))
	}
}
