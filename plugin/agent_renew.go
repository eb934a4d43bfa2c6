package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/internal/fsutil"
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
		_, certPEM, err := contextPEMs(store, c)
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
		caPEM, certPEM, err := contextPEMs(store, c)
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
	c, err := a.managedContext(name)
	if err == nil {
		cert, rerr := a.renewOne(ctx, c, renewOptions{})
		if rerr == nil {
			a.renewState().clear(name)
			return cert.NotAfter, nil
		}
		err = rerr
	}
	a.renewState().failed(name, err, time.Now())
	return time.Time{}, err
}

// renewStates keeps the last failure of each context's automatic renewal,
// one small file per context under $DOCKER_CONFIG/tls/renewals, written by
// the agent and read by ls and verify. It holds no secret.
type renewStates struct{ dir string }

// renewFailure is a context's failing automatic renewal.
type renewFailure struct {
	Since    time.Time `json:"since"`
	Last     time.Time `json:"last"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"`
}

func (a *app) renewState() renewStates {
	return renewStates{dir: filepath.Join(a.configDir(), "tls", "renewals")}
}

// failing lists the contexts with a recorded renewal failure.
func (s renewStates) failing() []string {
	entries, _ := os.ReadDir(s.dir)
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	return names
}

func (s renewStates) path(name string) string { return filepath.Join(s.dir, name+".json") }

func (s renewStates) get(name string) (*renewFailure, error) {
	data, err := os.ReadFile(s.path(name))
	if err != nil {
		return nil, err
	}
	var f renewFailure
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

func (s renewStates) failed(name string, err error, now time.Time) {
	f, gerr := s.get(name)
	if gerr != nil {
		f = &renewFailure{Since: now}
	}
	f.Last, f.Attempts, f.Error = now, f.Attempts+1, err.Error()
	data, _ := json.Marshal(f)
	if mkErr := fsutil.MkdirPrivate(s.dir); mkErr == nil {
		_ = fsutil.WriteFile(s.path(name), data, fsutil.PrivateFile, true)
	}
}

func (s renewStates) clear(name string) {
	if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return // a stale record only repeats a warning until the next success
	}
}

// message says in one sentence that a context's automatic renewal fails,
// or returns "".
func (f *renewFailure) message(name string) string {
	if f == nil {
		return ""
	}
	return fmt.Sprintf("the automatic renewal of %q has failed %d time(s) since %s: %s", name, f.Attempts, f.Since.Local().Format(time.RFC3339), f.Error)
}
