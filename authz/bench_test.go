package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"

	"github.com/docker-tls/docker-tls/internal/pkitest"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/policy"
)

// BenchmarkPluginOverSocket is what dockerd pays per API call: an
// AuthZReq of GET /containers/json with a client certificate, as JSON over
// the plugin's unix socket, decided under a policy with a CRL held, and
// written to the audit trail; then the AuthZRes dockerd sends after the
// call, with the answer's body. Keep-alive clients in parallel, as
// dockerd's are.
func BenchmarkPluginOverSocket(b *testing.B) {
	dir := b.TempDir()
	ca := pkitest.NewCA(b, "engine CA", "")
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		b.Fatal(err)
	}
	alice, err := ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "alice", Groups: []string{"ops"}, PublicKey: key.Public(), Lifetime: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	caPath, crlPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "crl.pem")
	if err := os.WriteFile(caPath, pki.EncodeCertificate(ca.Cert), 0o644); err != nil {
		b.Fatal(err)
	}
	der, err := ca.CRL([]pki.Revoked{{Serial: ca.Cert.SerialNumber, At: time.Now()}}, bigOne(), time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(crlPath, pki.EncodeCRL(der), 0o644); err != nil {
		b.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "policy.json")
	cfg := Config{Engine: "e", CAs: caPath, Policy: policy.Policy{Grants: []policy.Grant{{Subject: "group:ops", Role: policy.Operator}}}}
	data, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		b.Fatal(err)
	}
	cfgFile := &ConfigFile{Path: cfgPath}
	crls := &CRLFile{Path: crlPath}
	audit := &AuditLog{Path: filepath.Join(dir, "audit.log"), MaxBytes: 1 << 30}
	defer audit.Close()
	p := &Plugin{Decider: &Decider{Rules: policy.NewRules(), Revoked: crls.Revoked}, Config: cfgFile, CRLs: crls,
		Audit: func(d Decision) { _ = audit.Write(d) }}
	sock := filepath.Join(dir, "p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() { _ = Handler(p, time.Now()).Serve(l) }()
	pc := authorization.PeerCertificate(*alice)
	req := authorization.Request{RequestMethod: "GET", RequestURI: "/v1.41/containers/json",
		RequestPeerCertificates: []*authorization.PeerCertificate{&pc}}
	body, _ := json.Marshal(req)
	// The response, as dockerd sends it after the call: the request again
	// with the answer's status, headers and body (one container listed).
	req.ResponseStatusCode = 200
	req.ResponseHeaders = map[string]string{"Content-Type": "application/json", "Api-Version": "1.41"}
	req.ResponseBody = []byte(`[{"Id":"4f9a0c1d2e3b","Names":["/box"],"Image":"busybox:local","Command":"sleep 3600","State":"running","Status":"Up 2 minutes","Ports":[],"Labels":{},"HostConfig":{"NetworkMode":"none"},"Mounts":[]}]`)
	resBody, _ := json.Marshal(req)
	b.SetParallelism(10) // 10 × GOMAXPROCS clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
		call := func(path string, body []byte) bool {
			resp, err := hc.Post("http://plugin/"+path, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return false
			}
			var out authorization.Response
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if json.Unmarshal(raw, &out) != nil || !out.Allow {
				b.Errorf("%s refused: %s", path, raw)
				return false
			}
			return true
		}
		for pb.Next() {
			if !call(authorization.AuthZApiRequest, body) || !call(authorization.AuthZApiResponse, resBody) {
				return
			}
		}
	})
}

func bigOne() *big.Int { return big.NewInt(1) }
