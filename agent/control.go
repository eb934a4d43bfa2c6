package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"time"
)

// Status is what `docker tls agent status` reports.
type Status struct {
	PID         int               `json:"pid"`
	Started     time.Time         `json:"started"`
	Dir         string            `json:"dir"`
	Contexts    []ContextStatus   `json:"contexts"`
	Connections int64             `json:"connections"`
	Total       int64             `json:"totalConnections"`
	IdleLock    string            `json:"idleLock,omitempty"`
	Extra       map[string]string `json:"extra,omitempty"`
	Renewals    []RenewalStatus   `json:"renewals,omitempty"`
}

// ContextStatus is one served context.
type ContextStatus struct {
	Name      string `json:"name"`
	Socket    string `json:"socket"`
	Remote    string `json:"remote"`
	KeyLoaded bool   `json:"keyLoaded"`
}

func (a *Agent) status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{PID: os.Getpid(), Started: a.started, Dir: a.cfg.Dir, Connections: a.conns.Load(), Total: a.total.Load()}
	if a.cfg.IdleLock > 0 {
		st.IdleLock = a.cfg.IdleLock.String()
	}
	for name, s := range a.eps {
		_, loaded := a.keys[s.ep.KeyID]
		st.Contexts = append(st.Contexts, ContextStatus{Name: name, Socket: SocketPath(a.cfg.Dir, name), Remote: s.ep.Remote, KeyLoaded: loaded})
	}
	sort.Slice(st.Contexts, func(i, j int) bool { return st.Contexts[i].Name < st.Contexts[j].Name })
	for name, r := range a.renewals {
		st.Renewals = append(st.Renewals, RenewalStatus{Name: name, Due: r.due.At, NotAfter: r.due.NotAfter, Failures: r.failures,
			LastError: r.lastErr, NextTry: r.next, Renewed: r.lastOK, SignIn: r.due.SignIn})
	}
	sort.Slice(st.Renewals, func(i, j int) bool { return st.Renewals[i].Name < st.Renewals[j].Name })
	return st
}

type request struct {
	Op string `json:"op"`
}

type response struct {
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
	Locked int     `json:"locked,omitempty"`
}

func (a *Agent) serveControl(ctx context.Context, l net.Listener) {
	serve(l, a.cfg.Log, func(c net.Conn) { a.control(ctx, c) })
}

// control answers one request on the control socket.
func (a *Agent) control(ctx context.Context, c net.Conn) {
	defer c.Close()
	if err := checkPeer(c.(*net.UnixConn)); err != nil {
		a.cfg.Log.Printf("control: refused a connection: %v", err)
		return
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var req request
	if err := json.NewDecoder(io.LimitReader(c, 4096)).Decode(&req); err != nil {
		_ = json.NewEncoder(c).Encode(response{Error: "malformed request"})
		return
	}
	resp := response{OK: true}
	switch req.Op {
	case "status":
		st := a.status()
		resp.Status = &st
	case "lock":
		resp.Locked = a.Lock()
		a.cfg.Log.Printf("locked: %d key(s) dropped from memory", resp.Locked)
	case "reload":
		if err := a.reload(ctx); err != nil {
			resp = response{Error: err.Error()}
		}
		a.refreshDue()
	case "stop":
		defer a.stop()
	default:
		resp = response{Error: "unknown operation " + req.Op}
	}
	_ = json.NewEncoder(c).Encode(resp)
}

// Call sends one control request to the agent serving dir.
func Call(dir, op string) (*Status, int, error) {
	c, err := net.DialTimeout("unix", ControlPath(dir), 2*time.Second)
	if err != nil {
		return nil, 0, ErrNotRunning
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(c).Encode(request{Op: op}); err != nil {
		return nil, 0, err
	}
	var resp response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, 0, fmt.Errorf("agent: %w", err)
	}
	if !resp.OK {
		return nil, 0, errors.New("agent: " + resp.Error)
	}
	return resp.Status, resp.Locked, nil
}

// ErrNotRunning is returned by Call when no agent answers.
var ErrNotRunning = errors.New("the docker-tls agent is not running: start it with docker tls agent")

// Running reports whether an agent serves dir.
func Running(dir string) bool {
	c, err := net.DialTimeout("unix", ControlPath(dir), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
