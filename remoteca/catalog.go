package remoteca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/cli/cli/context/store"

	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/policy"
)

// The catalog is the team's engines as the CA service knows them: each
// engine's name, endpoint, the CA that signs its server certificate (the
// service's own, so that the client certificates it signs open the
// engine) and its policy. Catalog admins (ca serve --catalog-admin)
// publish and remove engines with their client certificate; anyone
// holding a valid certificate of the CA lists the engines where that
// certificate's user or one of its groups has a role, and a laptop makes
// one context for each (docker tls enroll --engines).
const (
	CatalogPath   = "/api/v1/docker-tls/catalog"
	PublishPath   = "/api/v1/docker-tls/catalog/publish"
	UnpublishPath = "/api/v1/docker-tls/catalog/remove"
)

// CatalogEngine is one engine of the catalog.
type CatalogEngine struct {
	Name string `json:"name"`
	// Host is the endpoint contexts use: tcp://HOST:PORT.
	Host string `json:"host"`
	// CA is the PEM of the CA that signs the engine's server certificate
	// and that dockerd verifies clients with.
	CA string `json:"ca"`
	// Policy is the engine's grants; nil when the engine enforces none,
	// and then any certificate of its CA is an admin there.
	Policy *policy.Policy `json:"policy,omitempty"`
	// PublishedBy and Published say who published it, and when.
	PublishedBy string    `json:"publishedBy,omitempty"`
	Published   time.Time `json:"published,omitzero"`
	// Role is, in a listing, the caller's role on the engine.
	Role policy.Role `json:"role,omitempty"`
}

// RoleOf is the role the engine's published policy gives id.
func (e *CatalogEngine) RoleOf(id policy.Identity) policy.Role {
	if e.Policy == nil {
		return policy.Admin
	}
	r, _ := e.Policy.RoleOf(id)
	return r
}

// CACert is the engine's CA.
func (e *CatalogEngine) CACert() (*x509.Certificate, error) {
	c, err := pki.ParseCertificate([]byte(e.CA))
	if err != nil {
		return nil, fmt.Errorf("engine %q: its CA: %w", e.Name, err)
	}
	return c, nil
}

// Check refuses an engine that cannot be published: a name that cannot
// name a Docker context, an endpoint that is not tcp://HOST:PORT, a CA
// that does not parse, or a policy that cannot be applied.
func (e *CatalogEngine) Check() error {
	if err := store.ValidateContextName(e.Name); err != nil {
		return fmt.Errorf("engine name %q: names are letters, digits and '_', '.', '+', '-', starting with a letter or digit", e.Name)
	}
	if err := CheckEngineHost(e.Host); err != nil {
		return fmt.Errorf("engine %q: %w", e.Name, err)
	}
	ca, err := e.CACert()
	if err != nil {
		return err
	}
	if !ca.IsCA {
		return fmt.Errorf("engine %q: its CA certificate is not a CA", e.Name)
	}
	if e.Policy != nil {
		if err := e.Policy.Check(); err != nil {
			return fmt.Errorf("engine %q: its policy: %w", e.Name, err)
		}
	}
	return nil
}

// CheckEngineHost checks an engine endpoint: tcp://HOST:PORT, nothing else.
func CheckEngineHost(host string) error {
	u, err := url.Parse(host)
	if err != nil || u.Scheme != "tcp" || u.Host == "" || u.Path != "" || u.User != nil || u.RawQuery != "" {
		return fmt.Errorf("endpoint %q is not tcp://HOST:PORT", host)
	}
	_, port, err := net.SplitHostPort(u.Host)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
		return fmt.Errorf("endpoint %q has no valid port", host)
	}
	return nil
}

// UnpublishRequest is the body of POST UnpublishPath.
type UnpublishRequest struct {
	Name string `json:"name"`
}

// PublishResult answers a publication or a removal.
type PublishResult struct {
	// Replaced: the engine was in the catalog before (with another
	// endpoint, CA or policy, or the same).
	Replaced bool `json:"replaced"`
}

// CatalogResult answers a listing.
type CatalogResult struct {
	Engines []CatalogEngine `json:"engines"`
}

// The catalog's table. The engine is kept whole, as JSON: the service
// reads it whole, and a later field needs no migration.
const catalogSchema = `CREATE TABLE IF NOT EXISTS catalog (
	name      TEXT PRIMARY KEY,
	engine    TEXT NOT NULL,
	published BIGINT NOT NULL)`

// Publish adds e to the catalog or replaces the engine of its name.
func (d *DB) Publish(ctx context.Context, e CatalogEngine) (replaced bool, err error) {
	data, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	tx, done, err := d.begin(ctx)
	if err != nil {
		return false, d.wrap(err)
	}
	defer done()
	var had string
	err = tx.QueryRowContext(ctx, d.q(`SELECT name FROM catalog WHERE name = ?`+d.forUpdate()), e.Name).Scan(&had)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, d.wrap(err)
	}
	// One statement for both cases: two replicas publishing the same new
	// engine at once must not fail on the primary key.
	if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO catalog (name, engine, published) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET engine = excluded.engine, published = excluded.published`), e.Name, string(data), e.Published.UnixNano()); err != nil {
		return false, d.wrap(err)
	}
	return had != "", d.wrap(tx.Commit())
}

// Unpublish removes the engine name from the catalog, and says whether it
// was there.
func (d *DB) Unpublish(ctx context.Context, name string) (bool, error) {
	res, err := d.db.ExecContext(ctx, d.q(`DELETE FROM catalog WHERE name = ?`), name)
	if err != nil {
		return false, d.wrap(err)
	}
	n, err := res.RowsAffected()
	return n > 0, d.wrap(err)
}

// Catalog is every engine of the catalog, by name.
func (d *DB) Catalog(ctx context.Context) ([]CatalogEngine, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name, engine FROM catalog ORDER BY name`)
	if err != nil {
		return nil, d.wrap(err)
	}
	defer rows.Close()
	var out []CatalogEngine
	for rows.Next() {
		var name, data string
		if err := rows.Scan(&name, &data); err != nil {
			return nil, d.wrap(err)
		}
		var e CatalogEngine
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return nil, d.wrap(fmt.Errorf("catalog engine %q: %w", name, err))
		}
		out = append(out, e)
	}
	return out, d.wrap(rows.Err())
}

// Revoked says whether a certificate (by serial, hex) or its CN was
// revoked.
func (d *DB) Revoked(ctx context.Context, serial, cn string) (bool, error) {
	var n int
	err := d.db.QueryRowContext(ctx, d.q(`SELECT
		(SELECT count(*) FROM issued WHERE serial = ? AND revoked_at <> 0) +
		(SELECT count(*) FROM revoked_names WHERE cn = ?)`), serial, cn).Scan(&n)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, d.wrap(err)
	}
	return n > 0, nil
}

// caller is who sent a catalog request: their client certificate, valid
// now, of the CA (either CA during a rotation), and neither it nor its CN
// revoked.
func (s *Server) caller(ctx context.Context, cs *tls.ConnectionState, a *authority, now time.Time) (policy.Identity, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return policy.Identity{}, refuse(http.StatusUnauthorized, "the catalog needs a client certificate from this CA (enroll first)")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: a.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: now}); err != nil {
		return policy.Identity{}, refuse(http.StatusUnauthorized, "the client certificate is not a valid client certificate of this CA (%v)", err)
	}
	revoked, err := s.DB.Revoked(ctx, fmt.Sprintf("%x", leaf.SerialNumber), leaf.Subject.CommonName)
	if err != nil {
		return policy.Identity{}, err
	}
	if revoked {
		return policy.Identity{}, refuse(http.StatusForbidden, "%s", ErrCertRevoked.Error())
	}
	return policy.Identity{User: leaf.Subject.CommonName, Groups: pki.GroupsOf(leaf)}, nil
}

// catalogAdmin checks that id may publish: it matches a --catalog-admin.
func (s *Server) catalogAdmin(id policy.Identity) error {
	if len(s.CatalogAdmins) == 0 {
		return refuse(http.StatusForbidden, "this service has no catalog admins: its operator runs ca serve with --catalog-admin user:CN or group:NAME")
	}
	for _, sub := range id.Subjects() {
		if slices.Contains(s.CatalogAdmins, sub) {
			return nil
		}
	}
	return refuse(http.StatusForbidden, "%s is not a catalog admin of this service (its --catalog-admin: %s)", who(id), joinSubjects(s.CatalogAdmins))
}

func who(id policy.Identity) string {
	if len(id.Groups) == 0 {
		return fmt.Sprintf("%q", id.User)
	}
	return fmt.Sprintf("%q (groups %s)", id.User, strings.Join(id.Groups, ","))
}

func joinSubjects(l []policy.Subject) string {
	s := make([]string, len(l))
	for i, v := range l {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// catalogRequest runs the common part of the catalog's endpoints: the
// caller, then handle; refusals and failures are answered and logged.
func (s *Server) catalogRequest(w http.ResponseWriter, r *http.Request, handle func(ctx context.Context, id policy.Identity, a *authority, now time.Time) (any, string, error)) {
	src := source(r)
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	now := s.now()
	a := s.current()
	id, err := s.caller(ctx, r.TLS, a, now)
	var result any
	var event string
	if err == nil {
		result, event, err = handle(ctx, id, a, now)
	}
	if err != nil {
		code, msg := status(err)
		if code >= 500 {
			s.logf("error source=%s path=%s: %v", src, r.URL.Path, err)
			msg = "the service's database did not answer, so nothing changed: try again"
		}
		s.logf("refused source=%s path=%s code=%d reason=%q", src, r.URL.Path, code, msg)
		writeJSON(w, code, nil, msg)
		return
	}
	if event != "" {
		s.logf("%s by=%q source=%s", event, id.User, src)
	}
	writeJSON(w, http.StatusOK, result, "")
}

func (s *Server) handleCatalog(w http.ResponseWriter, r *http.Request) {
	s.catalogRequest(w, r, func(ctx context.Context, id policy.Identity, _ *authority, _ time.Time) (any, string, error) {
		if code, msg := readBody(w, r, &struct{}{}); code != 0 {
			return nil, "", refuse(code, "%s", msg)
		}
		all, err := s.DB.Catalog(ctx)
		if err != nil {
			return nil, "", err
		}
		res := CatalogResult{Engines: []CatalogEngine{}}
		for _, e := range all {
			if e.Role = e.RoleOf(id); e.Role > policy.None {
				res.Engines = append(res.Engines, e)
			}
		}
		return res, "", nil
	})
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	s.catalogRequest(w, r, func(ctx context.Context, id policy.Identity, a *authority, now time.Time) (any, string, error) {
		if err := s.catalogAdmin(id); err != nil {
			return nil, "", err
		}
		var e CatalogEngine
		if code, msg := readBody(w, r, &e); code != 0 {
			return nil, "", refuse(code, "%s", msg)
		}
		if err := e.Check(); err != nil {
			return nil, "", refuse(http.StatusBadRequest, "%s", err.Error())
		}
		ca, _ := e.CACert()
		if !ca.Equal(a.ca.Cert) && (a.next == nil || !ca.Equal(a.next.Cert)) {
			return nil, "", refuse(http.StatusBadRequest, "engine %q: its CA (%s) is not this service's CA (%s), so the certificates this service signs would not open it", e.Name, pki.Fingerprint(ca), pki.Fingerprint(a.ca.Cert))
		}
		e.PublishedBy, e.Published, e.Role = id.User, now.UTC(), policy.None
		replaced, err := s.DB.Publish(ctx, e)
		if err != nil {
			return nil, "", err
		}
		return PublishResult{Replaced: replaced}, fmt.Sprintf("published engine=%q host=%q", e.Name, e.Host), nil
	})
}

func (s *Server) handleUnpublish(w http.ResponseWriter, r *http.Request) {
	s.catalogRequest(w, r, func(ctx context.Context, id policy.Identity, _ *authority, _ time.Time) (any, string, error) {
		if err := s.catalogAdmin(id); err != nil {
			return nil, "", err
		}
		var req UnpublishRequest
		if code, msg := readBody(w, r, &req); code != 0 {
			return nil, "", refuse(code, "%s", msg)
		}
		found, err := s.DB.Unpublish(ctx, req.Name)
		if err != nil {
			return nil, "", err
		}
		if !found {
			return nil, "", refuse(http.StatusNotFound, "engine %q is not in the catalog", req.Name)
		}
		return PublishResult{Replaced: true}, fmt.Sprintf("unpublished engine=%q", req.Name), nil
	})
}

// Catalog lists the engines where the identity of cert (the client's
// certificate and key, of the CA in trust) has a role, each with that role.
func (c *Client) Catalog(ctx context.Context, trust []*x509.Certificate, cert tls.Certificate) ([]CatalogEngine, error) {
	var res CatalogResult
	if err := c.mutualPost(ctx, trust, cert, CatalogPath, struct{}{}, &res); err != nil {
		return nil, err
	}
	for i := range res.Engines {
		if err := res.Engines[i].Check(); err != nil {
			return nil, fmt.Errorf("the catalog of %s: %w", c.URL, err)
		}
	}
	return res.Engines, nil
}

// Publish adds e to the catalog (or replaces it), as the identity of cert.
func (c *Client) Publish(ctx context.Context, trust []*x509.Certificate, cert tls.Certificate, e CatalogEngine) (replaced bool, err error) {
	var res PublishResult
	err = c.mutualPost(ctx, trust, cert, PublishPath, e, &res)
	return res.Replaced, err
}

// Unpublish removes the engine name from the catalog, as the identity of
// cert.
func (c *Client) Unpublish(ctx context.Context, trust []*x509.Certificate, cert tls.Certificate, name string) error {
	var res PublishResult
	return c.mutualPost(ctx, trust, cert, UnpublishPath, UnpublishRequest{Name: name}, &res)
}

// mutualPost posts body to path over mutual TLS: the service must present
// a certificate of a CA in trust, and cert authenticates the client.
func (c *Client) mutualPost(ctx context.Context, trust []*x509.Certificate, cert tls.Certificate, path string, body, result any) error {
	eps, err := c.endpoints()
	if err != nil {
		return err
	}
	for _, u := range eps {
		if u.Scheme != "https" {
			return errors.New("the client certificate authenticates this request: the CA URL must be https://")
		}
	}
	return c.post(ctx, c.clientsTrusting(trust, &cert), path, body, result)
}
