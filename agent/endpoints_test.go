package agent

import (
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/internal/pkitest"
	"github.com/docker-tls/docker-tls/pki"
)

func TestEndpointsServeAgentModeContextsOnly(t *testing.T) {
	old, next := pkitest.NewCA(t, "old CA", ""), pkitest.NewCA(t, "new CA", "")
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := old.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "me", PublicKey: key.Public(), Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	certPEM := string(pki.EncodeCertificate(cert))
	bundle := string(pki.EncodeCertificate(old.Cert)) + string(pki.EncodeCertificate(next.Cert))
	agentCtx := func(name, caPEM, certPEM string) *contexts.Context {
		return &contexts.Context{Name: name, Host: "unix:///run/agent.sock", TLS: &contexts.Meta{Agent: true, Remote: "tcp://" + name + ":2376",
			CAPEM: caPEM, CertPEM: certPEM, KeyStore: "keyring", KeyID: "ctx-" + name}}
	}
	list := []*contexts.Context{
		agentCtx("rotating", bundle, certPEM),
		{Name: "files", Host: "tcp://files:2376", TLS: &contexts.Meta{KeyStore: "file", KeyID: "ctx-files"}},
		{Name: "default", Host: "unix:///var/run/docker.sock"},
		agentCtx("broken-ca", "not PEM", certPEM),
		agentCtx("broken-cert", bundle, ""),
	}
	eps := Endpoints(list)
	if len(eps) != 1 {
		t.Fatalf("served %d endpoints, want only the rotating context's", len(eps))
	}
	ep := eps[0]
	if ep.Name != "rotating" || ep.Remote != "tcp://rotating:2376" || len(ep.CAs) != 2 || !ep.Cert.Equal(cert) || ep.KeyStore != "keyring" || ep.KeyID != "ctx-rotating" {
		t.Errorf("endpoint %+v", ep)
	}
}
