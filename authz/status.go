package authz

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/docker/go-plugins-helpers/sdk"
)

// StatusPath is where the plugin says what it enforces. The engine's host
// asks it after every change, and before dockerd is told to use the
// plugin: dockerd 20.10 exits when a reload names an authorization plugin
// that does not answer.
const StatusPath = "/DockerTLS.Status"

// Status is what the plugin enforces now.
type Status struct {
	Engine string `json:"engine"`
	// PolicyDigest is the SHA-256 of the policy file in force.
	PolicyDigest string    `json:"policyDigest"`
	LocalDeny    bool      `json:"localDeny"`
	Grants       int       `json:"grants"`
	Started      time.Time `json:"started"`
	// LastProbe is the nonce of the last probe call the plugin was asked
	// about (Consulted).
	LastProbe string `json:"lastProbe,omitempty"`
	// CRLs are the revocation lists in force, one per CA.
	CRLs []CRLInfo `json:"crls"`
}

// Handler is Docker's authorization handler for p, with the status
// endpoint beside it.
func Handler(p *Plugin, started time.Time) *authorization.Handler {
	h := authorization.NewHandler(p)
	// Both calls dockerd makes per API call take patterns more specific
	// than the helper's (Go's ServeMux takes the most specific):
	//  - AuthZReq decodes only what a decision reads, and parses each
	//    client certificate once (serveAuthZReq);
	//  - AuthZRes: dockerd sends every answer back, with the client's
	//    certificates and the answer's body, for a reply that is always
	//    "allow" (AuthZRes above). It is drained and answered at once:
	//    that was half the plugin's work per API call.
	h.HandleFunc("POST /"+authorization.AuthZApiResponse, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		sdk.EncodeResponse(w, authorization.Response{Allow: true}, false)
	})
	h.HandleFunc("POST /"+authorization.AuthZApiRequest, p.serveAuthZReq)
	// The status looks at the files now: what asks it (policy set, a
	// pushed list) must see its change in force.
	h.HandleFunc(StatusPath, func(w http.ResponseWriter, r *http.Request) {
		cfg, err := p.Config.Fresh()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		st := Status{Engine: cfg.Engine, PolicyDigest: cfg.Digest, LocalDeny: cfg.LocalDeny,
			Grants: len(cfg.Policy.Grants), Started: started.UTC(), LastProbe: p.lastProbe(), CRLs: []CRLInfo{}}
		if p.CRLs != nil {
			st.CRLs = p.CRLs.Held(cfg.CAs)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	return h
}

// QueryStatus asks the plugin on socket what it enforces, after the
// handshake dockerd makes (Plugin.Activate, which must name authz).
func QueryStatus(ctx context.Context, socket string) (*Status, error) {
	c := unixClient(socket)
	defer c.CloseIdleConnections()
	var act struct{ Implements []string }
	if err := post(ctx, c, "/Plugin.Activate", &act); err != nil {
		return nil, err
	}
	if !slices.Contains(act.Implements, "authz") {
		return nil, fmt.Errorf("the plugin on %s implements %v, not authz", socket, act.Implements)
	}
	var st Status
	if err := post(ctx, c, StatusPath, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func post(ctx context.Context, c *http.Client, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://plugin"+path, bytes.NewReader(nil))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ProbeParam is the query parameter of a probe call: a call to dockerd
// that the plugin notes, so that whether dockerd consults the plugin is
// seen, not inferred (dockerd 20.10's docker info does not list plugins a
// reload added).
const ProbeParam = "docker-tls-probe"

func (p *Plugin) lastProbe() string {
	s, _ := p.probe.Load().(string)
	return s
}

// Consulted says whether dockerd on dockerSocket consults the plugin on
// pluginSocket: it makes one call to dockerd carrying a new nonce (its
// answer does not matter: a refusal by the plugin counts), then asks the
// plugin whether it saw the nonce.
func Consulted(ctx context.Context, dockerSocket, pluginSocket string) (bool, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false, err
	}
	nonce := hex.EncodeToString(b[:])
	c := unixClient(dockerSocket)
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/version?"+ProbeParam+"="+nonce, nil)
	if err != nil {
		return false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, fmt.Errorf("dockerd on %s: %w", dockerSocket, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	st, err := QueryStatus(ctx, pluginSocket)
	if err != nil {
		return false, err
	}
	return st.LastProbe == nonce, nil
}

func unixClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
}

// RevocationAge says in a few words how current the engine's revocation
// lists are: the oldest list it holds and how long ago that was issued,
// marked stale past its next update (the plugin still enforces it: the
// last good list stays in force).
func (s *Status) RevocationAge(now time.Time) string {
	if len(s.CRLs) == 0 {
		return "no list held"
	}
	oldest := s.CRLs[0]
	for _, c := range s.CRLs[1:] {
		if c.ThisUpdate.Before(oldest.ThisUpdate) {
			oldest = c
		}
	}
	age := fmt.Sprintf("issued %s ago", now.Sub(oldest.ThisUpdate).Round(time.Second))
	if now.After(oldest.NextUpdate) {
		age += ", stale"
	}
	return age
}
