package pki

import (
	"crypto/tls"
	"testing"
)

func TestClientTLS(t *testing.T) {
	ca := mustCA(t, ECDSAP256, CAOptions{})
	cfg := ClientTLS(ca.Cert, "engine.example.com", nil)
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ServerName != "engine.example.com" || cfg.InsecureSkipVerify || len(cfg.Certificates) != 0 {
		t.Fatalf("config %+v", cfg)
	}
	if !cfg.RootCAs.Equal(func() *tls.Config { c := ClientTLS(ca.Cert, "", nil); return c }().RootCAs) {
		t.Fatal("roots differ for the same CA")
	}
	if TLSCertificate(ca.Cert, nil) != nil || TLSCertificate(nil, ca.Key) != nil {
		t.Fatal("a half pair must give no certificate")
	}
	cfg = ClientTLS(ca.Cert, "x", TLSCertificate(ca.Cert, ca.Key))
	if len(cfg.Certificates) != 1 || cfg.Certificates[0].Leaf != ca.Cert {
		t.Fatalf("client certificate not presented: %+v", cfg.Certificates)
	}
}
