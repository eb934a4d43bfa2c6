package probe

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/moby/moby/client"

	"github.com/docker-tls/docker-tls/pki"
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
	cfg := pki.ClientTLSBundle(t.cas(), u.Hostname(), pki.TLSCertificate(t.Cert, t.Key))
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
