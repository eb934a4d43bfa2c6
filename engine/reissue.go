package engine

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// Reissue is a change to an engine docker tls set up: what it trusts and,
// with Issuer, the server certificate it serves. engine renew (a new
// certificate from the same CA) and ca rotate (a bundle of two CAs, then a
// certificate from the new one, then the new CA alone) both make it, and
// Records.Reissue is the one path that carries it out.
type Reissue struct {
	// Trust is the PEM bundle of the CAs the engine trusts after the
	// change; empty means Issuer's certificate alone.
	Trust []byte
	// Issuer issues a new server certificate for the names the engine
	// was set up with; nil keeps the certificate the engine serves.
	Issuer pki.Issuer
	// Lifetime is the new certificate's; 0 is the server default.
	Lifetime time.Duration
	// ReadyTimeout and Verify are Change's: how long dockerd may take to
	// serve again, and the check from the laptop that it does.
	ReadyTimeout time.Duration
	Verify       func(context.Context) error
}

// Reissued is what a reissue changed.
type Reissued struct {
	// Record is the engine's record as saved after the change.
	Record *Record
	// Cert is the new server certificate; nil when it was kept.
	Cert *x509.Certificate
	// Running is how many containers ran before the restart, and
	// KeptRunning whether they ran on through it (live-restore).
	Running     int
	KeptRunning bool
}

// Reissue reads the engine's host, installs what rq asks with a restart of
// dockerd under Apply's backup, check and rollback, and then saves the
// engine's record: the host changes first, so a failure or a crash leaves
// the record describing what the host serves (Apply rolls a failed change
// back; an interrupted one is found pending by the next run).
func (r Records) Reissue(ctx context.Context, s Shell, rec *Record, rq Reissue) (*Reissued, error) {
	trust := rq.Trust
	if len(trust) == 0 {
		if rq.Issuer == nil {
			return nil, errors.New("a reissue needs an issuer or a CA bundle to trust")
		}
		trust = pki.EncodeCertificate(rq.Issuer.Certificate())
	}
	cas, err := pki.ParseCertificates(trust)
	if err != nil {
		return nil, fmt.Errorf("the CAs engine %s is to trust: %w", rec.Name, err)
	}
	sans, _, err := pki.ParseSANs(rec.SANs)
	if err != nil {
		return nil, fmt.Errorf("engine %s's record: %w", rec.Name, err)
	}
	facts, err := Inspect(ctx, s, rec.Port, rec.TLSDir)
	if err != nil {
		return nil, err
	}
	// The plan's CA matters only for deciding whether a certificate is
	// due, which Reissue settles: it always installs the files.
	plan, err := PlanSetup(facts, Request{Port: rec.Port, TLSDir: rec.TLSDir, CA: cas[len(cas)-1], SANs: sans, Reissue: true, Now: time.Now()})
	if err != nil {
		return nil, err
	}
	paths := TLSPathsIn(rec.TLSDir)
	files := []File{{Path: paths.CA, Data: trust, Mode: 0o644}}
	done := &Reissued{Running: facts.Running, KeptRunning: facts.Running > 0 && !plan.StopsContainers}
	serial, notAfter := rec.Serial, rec.NotAfter
	if rq.Issuer != nil {
		life := rq.Lifetime
		if life == 0 {
			life = pki.DefaultServerLifetime
		}
		issued, cert, err := ServerFiles(rq.Issuer, sans, life, rec.TLSDir)
		if err != nil {
			return nil, err
		}
		for _, f := range issued {
			if f.Path != paths.CA {
				files = append(files, f)
			}
		}
		done.Cert, serial, notAfter = cert, Serial(cert), cert.NotAfter
	}
	// An engine that trusts two CAs (mid-rotation) is still recorded as
	// the old one's until it trusts the new one alone.
	fp := rec.CAFingerprint
	if len(cas) == 1 {
		fp = pki.Fingerprint(cas[0])
	}
	now := time.Now().UTC()
	change := Change{Plan: plan, TLSDir: rec.TLSDir, ReadyTimeout: rq.ReadyTimeout, Verify: rq.Verify, ServerFiles: files,
		State: HostState{SetupBy: "docker-tls", Mode: plan.Mode, Port: rec.Port, TLSDir: rec.TLSDir,
			CAFingerprint: fp, Serial: serial, NotAfter: notAfter, Updated: now}}
	if err := Apply(ctx, s, change); err != nil {
		return nil, err
	}
	next := *rec
	next.Serial, next.NotAfter, next.CAFingerprint, next.Mode, next.Updated = serial, notAfter, fp, plan.Mode, now
	if err := r.Put(&next); err != nil {
		return nil, err
	}
	done.Record = &next
	return done, nil
}
