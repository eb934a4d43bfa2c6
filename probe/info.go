package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/moby/moby/client"
)

// LiveRestore asks the engine, over mutual TLS verified against t.CA,
// whether it runs with live-restore: whether a restart of dockerd (to load
// a new server certificate) keeps containers running.
func LiveRestore(ctx context.Context, t Target, timeout time.Duration) (bool, error) {
	u, err := url.Parse(t.Host)
	if err != nil || u.Hostname() == "" {
		return false, fmt.Errorf("endpoint %q is not tcp://HOST:PORT", t.Host)
	}
	if t.CA == nil || t.Cert == nil || t.Key == nil {
		return false, fmt.Errorf("context %q lacks its CA, certificate or key", t.Name)
	}
	roots := x509.NewCertPool()
	roots.AddCert(t.CA)
	cfg := &tls.Config{RootCAs: roots, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{t.Cert.Raw}, PrivateKey: t.Key, Leaf: t.Cert}}}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: timeout}
	cli, err := client.New(client.WithHost(t.Host), client.WithHTTPClient(hc))
	if err != nil {
		return false, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return false, fmt.Errorf("ask the engine: %w", err)
	}
	return res.Info.LiveRestoreEnabled, nil
}
