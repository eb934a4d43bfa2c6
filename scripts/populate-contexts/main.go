// Command populate-contexts fills a DOCKER_CONFIG with N docker-tls contexts
// for `make bench`, through the same contexts package the plugin uses (one
// CA and one client certificate shared, so the crypto does not dominate).
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

func main() {
	n := flag.Int("n", 1000, "number of contexts")
	dir := flag.String("config", os.Getenv("DOCKER_CONFIG"), "DOCKER_CONFIG directory")
	flag.Parse()
	if err := run(*dir, *n); err != nil {
		fmt.Fprintln(os.Stderr, "populate-contexts:", err)
		os.Exit(1)
	}
}

func run(dir string, n int) error {
	if dir == "" {
		return fmt.Errorf("set DOCKER_CONFIG or --config")
	}
	caKey, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return err
	}
	ca, err := pki.NewCA(caKey, pki.CAOptions{CommonName: "bench CA"})
	if err != nil {
		return err
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return err
	}
	cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ClientProfile, CommonName: "bench", PublicKey: key.Public()})
	if err != nil {
		return err
	}
	store := contexts.Open(dir)
	start := time.Now()
	for i := range n {
		name := fmt.Sprintf("bench-%04d", i)
		_, _, err := store.Create(contexts.CreateOptions{
			Name: name, Host: fmt.Sprintf("tcp://engine-%04d.example.com:2376", i), KeyStore: keystore.KindFile,
			Identity: contexts.Identity{CA: ca.Cert, Cert: cert, Key: key},
		})
		if err != nil {
			return err
		}
	}
	fmt.Printf("created %d contexts in %s\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}
