// Command fake-engines serves many loopback TLS endpoints that answer
// /_ping and /version like dockerd with --tlsverify, plus some that accept
// connections and never answer, and creates one docker-tls context per
// endpoint in DOCKER_CONFIG. It exists for `make bench` (verify --all at
// scale); the tests prove features against a real dockerd instead.
// It listens on 127.0.0.1 only and exits after -duration.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

func main() {
	n := flag.Int("n", 190, "answering endpoints")
	silent := flag.Int("silent", 10, "endpoints that accept and never answer")
	dir := flag.String("config", os.Getenv("DOCKER_CONFIG"), "DOCKER_CONFIG directory")
	ready := flag.String("ready", "", "file to create once everything listens")
	duration := flag.Duration("duration", 10*time.Minute, "exit after this long")
	flag.Parse()
	if err := run(*dir, *n, *silent, *ready, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "fake-engines:", err)
		os.Exit(1)
	}
}

func run(dir string, n, silent int, ready string, duration time.Duration) error {
	if dir == "" {
		return fmt.Errorf("set DOCKER_CONFIG or --config")
	}
	caKey, _ := pki.GenerateKey(pki.ECDSAP256)
	ca, err := pki.NewCA(caKey, pki.CAOptions{CommonName: "fake engines CA"})
	if err != nil {
		return err
	}
	sans, _, _ := pki.ParseSANs([]string{"127.0.0.1", "localhost"})
	srvKey, _ := pki.GenerateKey(pki.ECDSAP256)
	srvCert, err := ca.Issue(pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans, PublicKey: srvKey.Public()})
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}},
		ClientCAs:    pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Ostype", "linux")
		fmt.Fprint(w, "OK")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"Version":"0.0.0-fake","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64","Components":[{"Name":"Engine","Version":"0.0.0-fake","Details":{"ApiVersion":"1.41","Os":"linux","Arch":"amd64"}}]}`)
	})
	store := contexts.Open(dir)
	for i := range n + silent {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		if i < n {
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
			go srv.Serve(tls.NewListener(l, cfg))
		} else {
			go hold(l) // accepts, never speaks
		}
		name := fmt.Sprintf("engine-%03d", i)
		key, _ := pki.GenerateKey(pki.ECDSAP256)
		cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "bench", PublicKey: key.Public()})
		if err != nil {
			return err
		}
		_, _, err = store.Create(contexts.CreateOptions{
			Name: name, Host: "tcp://" + l.Addr().String(), Force: true, KeyStore: keystore.KindFile,
			Identity: contexts.Identity{CA: ca.Cert, Cert: cert, Key: key},
		})
		if err != nil {
			return err
		}
	}
	if ready != "" {
		if err := os.WriteFile(ready, []byte("ready\n"), 0o600); err != nil {
			return err
		}
	}
	time.Sleep(duration)
	return nil
}

func hold(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			time.Sleep(time.Minute)
			c.Close()
		}()
	}
}
