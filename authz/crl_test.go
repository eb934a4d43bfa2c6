package authz

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"

	"github.com/docker-tls/docker-tls/internal/pkitest"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/policy"
)

func signedCRL(t *testing.T, ca *pki.CA, number int64, revoked ...*big.Int) []byte {
	t.Helper()
	var list []pki.Revoked
	for _, s := range revoked {
		list = append(list, pki.Revoked{Serial: s, At: time.Now()})
	}
	der, err := ca.CRL(list, big.NewInt(number), time.Now(), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return pki.EncodeCRL(der)
}

func TestMergeCRLs(t *testing.T) {
	ca, other := pkitest.NewCA(t, "engine CA", ""), pkitest.NewCA(t, "another CA", "")
	next := pkitest.NewCA(t, "engine CA 2", "")
	trusted := []*x509.Certificate{ca.Cert, next.Cert}
	v2, v3 := signedCRL(t, ca, 2, big.NewInt(7)), signedCRL(t, ca, 3, big.NewInt(7), big.NewInt(9))

	held, changed, err := MergeCRLs(nil, v2, trusted)
	if err != nil || !changed {
		t.Fatalf("a first list: %v, changed %v", err, changed)
	}
	if _, _, err := MergeCRLs(held, signedCRL(t, other, 9), trusted); err == nil || !strings.Contains(err.Error(), "not signed by a trusted CA") {
		t.Errorf("a list of another CA: %v", err)
	}
	if again, changed, err := MergeCRLs(held, v2, trusted); err != nil || changed || string(again) != string(held) {
		t.Errorf("the same list again: %v, changed %v", err, changed)
	}
	held3, changed, err := MergeCRLs(held, v3, trusted)
	if err != nil || !changed {
		t.Fatalf("a newer list: %v, changed %v", err, changed)
	}
	if _, _, err := MergeCRLs(held3, v2, trusted); err == nil || !strings.Contains(err.Error(), "older (number 2) than the one held (number 3)") {
		t.Errorf("an older list: %v", err)
	}
	// During a rotation, one list per CA; when the old CA is no longer
	// trusted, its list goes.
	both, _, err := MergeCRLs(held3, signedCRL(t, next, 1), trusted)
	if err != nil || strings.Count(string(both), "BEGIN X509 CRL") != 2 {
		t.Fatalf("the new CA's list beside the old one: %v\n%s", err, both)
	}
	after, _, err := MergeCRLs(both, signedCRL(t, next, 2), []*x509.Certificate{next.Cert})
	if err != nil || strings.Count(string(after), "BEGIN X509 CRL") != 1 {
		t.Errorf("after the rotation: %v\n%s", err, after)
	}
	if _, _, err := MergeCRLs(nil, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), trusted); err == nil {
		t.Error("a certificate taken for a CRL")
	}
}

func TestCRLFileAndPull(t *testing.T) {
	dir := t.TempDir()
	ca := pkitest.NewCA(t, "engine CA", "")
	caPath := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caPath, pki.EncodeCertificate(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	alice, bob, carol := client(t, ca, "alice"), client(t, ca, "bob"), client(t, ca, "carol")
	crlPath, lock := filepath.Join(dir, "crl.pem"), filepath.Join(dir, "run", "crl.lock")
	var rejected []error
	f := &CRLFile{Path: crlPath, Rejected: func(err error) { rejected = append(rejected, err) }}
	if f.Revoked(caPath, alice) {
		t.Fatal("revoked with no list")
	}
	if _, _, err := InstallCRL(crlPath, caPath, lock, signedCRL(t, ca, 2, alice.SerialNumber)); err != nil {
		t.Fatal(err)
	}
	// A push ends by asking the plugin's status, which looks at once.
	f.Held(caPath)
	if !f.Revoked(caPath, alice) || f.Revoked(caPath, bob) {
		t.Errorf("after a pushed list: alice %v, bob %v", f.Revoked(caPath, alice), f.Revoked(caPath, bob))
	}
	// An older list written behind the plugin's back is refused, told
	// once; the one in force stays.
	if err := os.WriteFile(crlPath, signedCRL(t, ca, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	f.Held(caPath)
	for range 3 {
		if !f.Revoked(caPath, alice) {
			t.Fatal("an older list undid a revocation")
		}
	}
	if len(rejected) != 1 || !strings.Contains(rejected[0].Error(), "older") {
		t.Errorf("rejections: %v", rejected)
	}

	// The pull: over TLS with the CA service's certificate from the CA.
	crl := signedCRL(t, ca, 5, alice.SerialNumber, bob.SerialNumber)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pkix-crl")
		b, _ := pem.Decode(crl)
		_, _ = w.Write(b.Bytes)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert(t, ca)}}
	srv.StartTLS()
	defer srv.Close()
	cfg := &Config{CAs: caPath, CRLURL: srv.URL + "/crl"}
	changed, infos, err := PullCRL(context.Background(), cfg, crlPath, lock)
	if err != nil || !changed || len(infos) != 1 || infos[0].Number != "5" || infos[0].Revoked != 2 {
		t.Fatalf("pull: %v, changed %v, %+v", err, changed, infos)
	}
	// The plugin's own puller puts what it took in force at once.
	crl = signedCRL(t, ca, 6, alice.SerialNumber, bob.SerialNumber)
	var logged []string
	puller := &Puller{CRLPath: crlPath, LockPath: lock, CRLs: f, Logf: func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }}
	if last := puller.pull(context.Background(), cfg, ""); last != "" {
		t.Fatalf("pull: %s", last)
	}
	if !f.Revoked(caPath, bob) {
		t.Errorf("bob is not revoked after the pull (%q)", logged)
	}
	if held := f.Held(caPath); len(held) != 1 || held[0].Number != "6" || held[0].CA != "engine CA" {
		t.Errorf("held: %+v", held)
	}

	// A list written behind the plugin's back is taken by an API call
	// once Recheck has passed.
	f.Revoked(caPath, carol)
	if err := os.WriteFile(crlPath, signedCRL(t, ca, 7, alice.SerialNumber, bob.SerialNumber, carol.SerialNumber), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(Recheck + 50*time.Millisecond)
	if !f.Revoked(caPath, carol) {
		t.Errorf("a list written %v ago is not in force", Recheck)
	}
}

// serverCert is the CA service's certificate for 127.0.0.1, from ca.
func serverCert(t *testing.T, ca *pki.CA) tls.Certificate {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	sans, _, err := pki.ParseSANs([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans, PublicKey: key.Public(), Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

func TestReadAudit(t *testing.T) {
	dir := t.TempDir()
	log := &AuditLog{Path: filepath.Join(dir, "audit.log"), MaxBytes: 600}
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for i := range 8 {
		d := Decision{Time: t0.Add(time.Duration(i) * time.Minute), Allow: i%2 == 0, User: []string{"alice", "bob"}[i%2], Method: "GET", Path: "/v1.41/containers/json", Role: "viewer", Needs: "viewer", Rule: "user:x"}
		if err := log.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(log.Path + ".1"); err != nil {
		t.Fatalf("the trail did not rotate at 600 bytes: %v", err)
	}
	read := func(f AuditFilter) []Decision {
		t.Helper()
		var b strings.Builder
		if err := ReadAudit(context.Background(), log.Path, f, false, &b); err != nil {
			t.Fatal(err)
		}
		var out []Decision
		for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
			if l == "" {
				continue
			}
			var d Decision
			if err := json.Unmarshal([]byte(l), &d); err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
		return out
	}
	all := read(AuditFilter{})
	if len(all) < 4 || !all[len(all)-1].Time.Equal(t0.Add(7*time.Minute)) {
		t.Errorf("all: %d records, last %v", len(all), all[len(all)-1].Time)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.Before(all[i-1].Time) {
			t.Errorf("not oldest first: %v after %v", all[i].Time, all[i-1].Time)
		}
	}
	for _, d := range read(AuditFilter{Denied: true, User: "bob", Since: t0.Add(5 * time.Minute)}) {
		if d.Allow || d.User != "bob" || d.Time.Before(t0.Add(5*time.Minute)) {
			t.Errorf("filter let through %+v", d)
		}
	}
	if got := read(AuditFilter{Denied: true, User: "bob", Since: t0.Add(5 * time.Minute)}); len(got) != 2 {
		t.Errorf("bob's refusals since 10:05: %d, want 2 (10:05, 10:07)", len(got))
	}

	// Follow: new records, across a rotation, until the context ends.
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- ReadAudit(ctx, log.Path, AuditFilter{Since: t0.Add(time.Hour)}, true, pw); pw.Close() }()
	sc := bufio.NewScanner(pr)
	for i := range 6 {
		if err := log.Write(Decision{Time: t0.Add(2 * time.Hour), User: fmt.Sprintf("u%d", i), Method: "GET", Path: "/p"}); err != nil {
			t.Fatal(err)
		}
		if !sc.Scan() || !strings.Contains(sc.Text(), fmt.Sprintf(`"user":"u%d"`, i)) {
			t.Fatalf("followed record %d: %q", i, sc.Text())
		}
	}
	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err := <-done; err != nil {
		t.Errorf("follow ended with %v", err)
	}
}

func TestRevocationAge(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	list := func(issued, next time.Duration) CRLInfo {
		return CRLInfo{ThisUpdate: now.Add(-issued), NextUpdate: now.Add(next)}
	}
	tests := []struct {
		crls []CRLInfo
		want string
	}{
		{nil, "no list held"},
		{[]CRLInfo{list(42*time.Second, time.Hour)}, "issued 42s ago"},
		// The oldest of two (a rotation holds two CAs) decides.
		{[]CRLInfo{list(time.Minute, time.Hour), list(3*time.Hour, -time.Hour)}, "issued 3h0m0s ago, stale"},
	}
	for _, tc := range tests {
		st := Status{CRLs: tc.crls}
		if got := st.RevocationAge(now); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.crls, got, tc.want)
		}
	}
}

// TestPushedCRLInForceAtOnce: a pushed list is in force for the next API
// call, though the plugin looked at its files a moment before (Recheck).
func TestPushedCRLInForceAtOnce(t *testing.T) {
	dir := t.TempDir()
	ca := pkitest.NewCA(t, "engine CA", "")
	alice := client(t, ca, "alice")
	caPath, crlPath, cfgPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "crl.pem"), filepath.Join(dir, "policy.json")
	if err := os.WriteFile(caPath, pki.EncodeCertificate(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, cfgPath, Config{Engine: "e", CAs: caPath, Policy: policy.Policy{Grants: []policy.Grant{{Subject: "*", Role: policy.Admin}}}})
	crls := &CRLFile{Path: crlPath}
	p := &Plugin{Decider: &Decider{Rules: policy.NewRules(), Revoked: crls.Revoked}, Config: &ConfigFile{Path: cfgPath}, CRLs: crls}
	sock := filepath.Join(dir, "p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() { _ = Handler(p, time.Now()).Serve(l) }()
	pc := authorization.PeerCertificate(*alice)
	body, _ := json.Marshal(authorization.Request{RequestMethod: "GET", RequestURI: "/v1.47/info", RequestPeerCertificates: []*authorization.PeerCertificate{&pc}})
	hc := unixClient(sock)
	defer hc.CloseIdleConnections()
	ask := func() authorization.Response {
		t.Helper()
		resp, err := hc.Post("http://plugin/"+authorization.AuthZApiRequest, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out authorization.Response
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := ask(); !got.Allow {
		t.Fatalf("before the push: %q", got.Msg)
	}
	changed, _, err := TakePushedCRL(crlPath, caPath, filepath.Join(dir, "crl.lock"), sock, signedCRL(t, ca, 1, alice.SerialNumber))
	if err != nil || !changed {
		t.Fatalf("push: %v, changed %v", err, changed)
	}
	if got := ask(); got.Allow || !strings.Contains(got.Msg, "is revoked") {
		t.Errorf("the call after the push: allow %v, %q", got.Allow, got.Msg)
	}
}
