package authz

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/docker-tls/docker-tls/policy"
)

// Service is the plugin as it runs on the engine's host: the policy file,
// the revocation lists (pulled when the policy says so), the audit trail,
// and the socket dockerd asks on.
type Service struct {
	Config, Socket, Audit, CRL, CRLLock string
	AuditMax                            int64
	Logf                                func(format string, args ...any)
}

// Run serves until ctx ends. A policy that cannot be read at start is not
// served: dockerd would refuse every call; better that the unit fails and
// says why.
func (s Service) Run(ctx context.Context) error {
	cfgFile := &ConfigFile{Path: s.Config, Rejected: func(err error) {
		s.Logf("refused a changed policy, the last good one stays in force: %v", err)
	}}
	if _, err := cfgFile.Current(); err != nil {
		return fmt.Errorf("the policy %s: %w", s.Config, err)
	}
	audit := &AuditLog{Path: s.Audit, MaxBytes: s.AuditMax}
	defer audit.Close()
	crls := &CRLFile{Path: s.CRL, Rejected: func(err error) {
		s.Logf("refused a revocation list, the last good one stays in force: %v", err)
	}}
	go (&Puller{Config: cfgFile, CRLPath: s.CRL, LockPath: s.CRLLock, CRLs: crls, Logf: s.Logf}).Run(ctx)
	p := &Plugin{
		Decider: &Decider{Rules: policy.NewRules(), Revoked: crls.Revoked},
		CRLs:    crls,
		Config:  cfgFile,
		Audit: func(d Decision) {
			if err := audit.Write(d); err != nil {
				s.Logf("audit: %v", err)
			}
		},
	}
	l, err := pluginListener(s.Socket)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	s.Logf("serving %s on %s", s.Config, s.Socket)
	err = Handler(p, time.Now()).Serve(l)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// WaitStatus asks the plugin on socket for its status (QueryStatus), again
// for up to wait while it does not answer.
func WaitStatus(ctx context.Context, socket string, wait time.Duration) (*Status, error) {
	deadline := time.Now().Add(wait)
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := QueryStatus(qctx, socket)
		cancel()
		if err == nil {
			return st, nil
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("the plugin on %s does not answer: %w", socket, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pluginListener is the socket systemd passed (docker-tls-authz.socket:
// calls wait on it while the plugin restarts), or, run by hand, one of its
// own on path.
func pluginListener(path string) (net.Listener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("the sockets systemd passed: %w", err)
	}
	for i, l := range ls {
		if l != nil {
			for _, other := range ls[i+1:] {
				if other != nil {
					other.Close()
				}
			}
			return l, nil
		}
	}
	return listenUnix(path)
}

// listenUnix listens on path, replacing a socket a previous run left (and
// nothing else).
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket: move it away", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
