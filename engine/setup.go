package engine

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docker-tls/docker-tls/internal/crashpoint"
	"github.com/docker-tls/docker-tls/pki"
)

// Setup is engine setup's change to one host, once the host was read
// (Facts), the change decided (Plan) and shown: Records.Setup carries it
// out in an order that a crash at any point leaves findable.
type Setup struct {
	// Engine is the engine as it will be recorded; Setup fills in its
	// certificate, mode, backup, status and time.
	Engine Record
	Facts  *Facts
	Plan   *Plan
	// Issuer issues the server certificate when the plan says one is due.
	Issuer   pki.Issuer
	Lifetime time.Duration
	// ReadyTimeout and Verify are Change's.
	ReadyTimeout time.Duration
	Verify       func(context.Context) error
	// Recorded says the engine has a record already (a second run, or
	// --force): it is not written first, nor removed by a rollback.
	Recorded bool
	// Context makes the engine's context once the host serves TLS; nil
	// when the context is in place.
	Context func() error
	// Changing is told just before the host is changed.
	Changing func()
}

// ContextError is a setup whose host serves TLS but whose context could
// not be made: running the setup again finishes it.
type ContextError struct{ Err error }

func (e *ContextError) Error() string {
	return "the engine is set up, but its context was not created: " + e.Err.Error()
}
func (e *ContextError) Unwrap() error { return e.Err }

// Setup records the engine as being set up (so an interrupted setup is
// listed, and can be run again or torn down), changes the host (Apply:
// backup, files, restart, check, rollback), makes the context, and marks
// the record ready. A first setup that failed and was rolled back leaves
// no record, as it leaves the host as it was.
func (r Records) Setup(ctx context.Context, s Shell, su Setup) (*Record, error) {
	rec := su.Engine
	rec.Mode, rec.Backup, rec.Status, rec.Updated = su.Plan.Mode, OriginalBackup, StatusSettingUp, time.Now().UTC()
	change := Change{Plan: su.Plan, TLSDir: rec.TLSDir, ReadyTimeout: su.ReadyTimeout, Verify: su.Verify, FirstSetup: !su.Facts.HasBackup}
	// The server certificate the engine will serve: a new one, or the one
	// it has.
	var cert *x509.Certificate
	if su.Plan.IssueCert {
		if su.Issuer == nil {
			return nil, errors.New("the plan issues a server certificate, and no CA was given to issue it")
		}
		life := su.Lifetime
		if life == 0 {
			life = pki.DefaultServerLifetime
		}
		sans, _, err := pki.ParseSANs(rec.SANs)
		if err != nil {
			return nil, fmt.Errorf("server certificate names: %w", err)
		}
		if change.ServerFiles, cert, err = ServerFiles(su.Issuer, sans, life, rec.TLSDir); err != nil {
			return nil, err
		}
	} else if c, err := pki.ParseCertificate(su.Facts.ServerCert); err == nil {
		cert = c
	}
	change.State = HostState{SetupBy: "docker-tls", Mode: su.Plan.Mode, Port: rec.Port, TLSDir: rec.TLSDir,
		CAFingerprint: rec.CAFingerprint, Updated: rec.Updated}
	if cert != nil {
		rec.Serial, rec.NotAfter = Serial(cert), cert.NotAfter
		change.State.Serial, change.State.NotAfter = rec.Serial, rec.NotAfter
	}
	if !su.Recorded {
		if err := r.Put(&rec); err != nil {
			return nil, err
		}
	}
	crashpoint.Hit("engine-setup:recorded")
	if su.Plan.Restart || len(su.Plan.Config) > 0 || len(change.ServerFiles) > 0 {
		if su.Changing != nil {
			su.Changing()
		}
		if err := Apply(ctx, s, change); err != nil {
			var ae *ApplyError
			if !su.Recorded && change.FirstSetup && errors.As(err, &ae) && ae.Restored {
				_ = r.Remove(rec.Name) // the host is as it was: nothing to list
			}
			return nil, err
		}
	}
	crashpoint.Hit("engine-setup:applied")
	if su.Context != nil {
		if err := su.Context(); err != nil {
			return nil, &ContextError{Err: err}
		}
	}
	rec.Status = StatusReady
	if err := r.Put(&rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// SANs are the names a server certificate covers: the name dialled, the
// host's own names and global addresses, and extra (--san), each once.
func SANs(dialled string, f *Facts, extra []string) (pki.SANs, error) {
	var names []string
	seen := map[string]bool{}
	add := func(n string) {
		n = strings.TrimSpace(n)
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	add(dialled)
	add(f.Hostname)
	if strings.Contains(f.FQDN, ".") {
		add(f.FQDN)
	}
	for _, ip := range f.Addrs {
		add(ip.String())
	}
	for _, e := range extra {
		add(e)
	}
	sans, _, err := pki.ParseSANs(names)
	if err != nil {
		return pki.SANs{}, fmt.Errorf("server certificate names: %w", err)
	}
	return sans, nil
}
