package rotation

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
)

// Session is a connection to an engine's host, closed after its step.
type Session interface {
	engine.Shell
	Close()
}

// Steps carries out a rotation's steps on this machine's engines and
// contexts (the Executor), and holds the run before phases 3 and 4 while
// laptops enrolled through the CA's service are still on the old CA (the
// Gate).
type Steps struct {
	// CA is the rotating CA as stored, Old and New its two signers.
	CA       *castore.CA
	Old, New *pki.CA
	Contexts *contexts.Store
	Engines  engine.Records
	// Dial connects to an engine's host.
	Dial func(context.Context, *engine.Record) (Session, error)
	// Check returns the check, through the engine's context, that an
	// engine serves mutual TLS after its restart.
	Check func(contextName string) (func(context.Context) error, error)
	// ReadyTimeout is how long dockerd may take to serve after a restart.
	ReadyTimeout time.Duration
	// Record, when set, is signer recording what it issues in the CA's
	// inventory under source ("engine NAME", "context NAME"), so that ca
	// revoke finds the rotation's certificates too.
	Record func(ctx context.Context, signer *pki.CA, source string) pki.Issuer
	// DB is the CA service's database, nil when the CA has none: laptops
	// are counted there, and the renewals of this machine's enrolled
	// contexts recorded.
	DB *remoteca.DB
	// FinishNow goes on past laptops still on the old CA; LeftBehind is
	// told who they are, once.
	FinishNow  bool
	LeftBehind func([]*remoteca.Issued)
	told       bool
}

// BeforePhase holds the rotation before phase 3, and again before phase
// 4, while laptops that enrolled through the CA's service still hold
// valid certificates from the old CA: one that has not renewed trusts the
// old CA alone, and would refuse an engine's certificate from the new one
// (phase 3), and its certificate would stop working at phase 4. With
// FinishNow it names them (LeftBehind) and goes on.
func (s *Steps) BeforePhase(ctx context.Context, st *State, next Phase) error {
	left, err := LaptopsOnOldCA(ctx, s.DB, st, s.CA.Cert)
	if err != nil {
		return fmt.Errorf("count the laptops still on the old CA: %w", err)
	}
	if len(left) == 0 {
		return nil
	}
	if !s.FinishNow {
		return &WaitError{Next: next, Laptops: DescribeLaptops(left)}
	}
	if !s.told && s.LeftBehind != nil {
		s.LeftBehind(left)
	}
	s.told = true
	return nil
}

func (s *Steps) bundle() []byte {
	return append(pki.EncodeCertificate(s.Old.Cert), pki.EncodeCertificate(s.New.Cert)...)
}

// Apply brings one target to a phase.
func (s *Steps) Apply(ctx context.Context, t *Target, to Phase) error {
	var trust []byte
	var issuer *pki.CA
	switch to {
	case TrustBoth:
		trust = s.bundle()
	case Reissued:
		trust, issuer = s.bundle(), s.New
	case Retired:
		trust = pki.EncodeCertificate(s.New.Cert)
	default:
		return fmt.Errorf("no step to phase %d", to)
	}
	return s.step(ctx, t, trust, issuer)
}

// Revert takes one target back a phase.
func (s *Steps) Revert(ctx context.Context, t *Target, from Phase) error {
	if from == Reissued {
		return s.step(ctx, t, s.bundle(), s.Old)
	}
	return s.step(ctx, t, pki.EncodeCertificate(s.Old.Cert), nil)
}

func (s *Steps) step(ctx context.Context, t *Target, trust []byte, issuer *pki.CA) error {
	if t.Kind == Engine {
		return s.engine(ctx, t.Name, trust, issuer)
	}
	return s.context(ctx, t.Name, trust, issuer)
}

// context makes a context trust caPEM and, with issuer, hold a new client
// certificate from it for the same key, subject and lifetime. A context
// enrolled through the CA's service has its new certificate recorded in
// the service's inventory as the renewal of the old one.
func (s *Steps) context(ctx context.Context, name string, caPEM []byte, issuer *pki.CA) error {
	c, err := s.Contexts.Get(name)
	if err != nil {
		return err
	}
	var old, cert *x509.Certificate
	if issuer != nil {
		_, certPEM, err := s.Contexts.PEMs(c)
		if err != nil {
			return err
		}
		if old, err = pki.ParseCertificate(certPEM); err != nil {
			return err
		}
		life := old.NotAfter.Sub(old.NotBefore) - pki.Backdate
		if left := time.Until(issuer.Cert.NotAfter) - time.Hour; life > left {
			life = left
		}
		// An enrolled context's certificate is recorded below, in the
		// service's inventory, as the renewal of the old one.
		var iss pki.Issuer = issuer
		if c.TLS.CAURL == "" {
			iss = s.issuer(ctx, issuer, "context "+name)
		}
		if cert, err = iss.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: old.Subject.CommonName, Groups: pki.GroupsOf(old), PublicKey: old.PublicKey, Lifetime: life}); err != nil {
			return err
		}
	}
	if _, err = s.Contexts.Retrust(c, caPEM, cert); err != nil {
		return err
	}
	if cert != nil && c.TLS.CAURL != "" && s.DB != nil {
		if err := s.DB.RecordRenewal(ctx, old, cert, "ca rotate "+s.CA.Name, time.Now()); err != nil {
			return fmt.Errorf("record the renewal of context %s in the CA service's inventory: %w", name, err)
		}
	}
	return nil
}

// engine makes an engine trust caPEM and, with issuer, serve a new
// certificate from it: engine renew's path (Records.Reissue), with its
// restart safety, rollback and check through the engine's context.
func (s *Steps) engine(ctx context.Context, name string, caPEM []byte, issuer *pki.CA) error {
	rec, err := s.Engines.Get(name)
	if err != nil {
		return err
	}
	check, err := s.Check(rec.Context)
	if err != nil {
		return fmt.Errorf("context %s, used to check the engine after its restart: %w", rec.Context, err)
	}
	sess, err := s.Dial(ctx, rec)
	if err != nil {
		return err
	}
	defer sess.Close()
	rq := engine.Reissue{Trust: caPEM, ReadyTimeout: s.ReadyTimeout, Verify: check}
	if issuer != nil { // a nil *pki.CA must not become a non-nil Issuer
		rq.Issuer = s.issuer(ctx, issuer, "engine "+name)
	}
	_, err = s.Engines.Reissue(ctx, sess, rec, rq)
	return err
}

// issuer is signer, recording what it issues when Record is set.
func (s *Steps) issuer(ctx context.Context, signer *pki.CA, source string) pki.Issuer {
	if s.Record == nil {
		return signer
	}
	return s.Record(ctx, signer, source)
}

// LaptopsOnOldCA are the certificates the CA's service issued to laptops
// that are still on the old CA: valid, client, from the old CA, and not
// this machine's own contexts (the rotation renews those itself). db is
// the service's database, nil when the CA has none.
func LaptopsOnOldCA(ctx context.Context, db *remoteca.DB, st *State, old *x509.Certificate) ([]*remoteca.Issued, error) {
	if db == nil {
		return nil, nil
	}
	all, err := db.StillOnCA(ctx, old, time.Now())
	if err != nil {
		return nil, err
	}
	var left []*remoteca.Issued
	for _, rec := range all {
		if !slices.Contains(st.LocalSerials, rec.Serial) {
			left = append(left, rec)
		}
	}
	return left, nil
}

// DescribeLaptops says who each laptop is, one line each.
func DescribeLaptops(recs []*remoteca.Issued) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		serial := r.Serial
		if len(serial) > 12 {
			serial = serial[:12] + "…"
		}
		out[i] = fmt.Sprintf("%s (serial %s, valid until %s)", r.CN, serial, r.NotAfter.Local().Format("2006-01-02 15:04"))
	}
	return out
}
