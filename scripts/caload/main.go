// Command caload is the load generator of `make bench` for CA services:
// docker-tls's `ca serve` (one-time tokens) and cfssl's `serve` (an auth
// key), over the same cfssl authsign API, so that both are measured by one
// client the same way: N concurrent clients, each with its own HTTPS
// connection kept alive, each enrollment a fresh ECDSA P-256 key and CSR.
//
// It prints one line: n, clients, rate (enrollments/s), p50 and p99 latency
// in ms, errors. With -populate it instead fills a docker-tls service
// database with N tokens and N inventory rows, to measure how the rate
// holds as the state grows.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
	_ "github.com/docker-tls/docker-tls/remoteca/drivers"
)

func main() {
	url := flag.String("url", "", "service, https://HOST:PORT")
	caFile := flag.String("ca", "", "PEM of the CA the service's HTTPS certificate chains to")
	tokensFile := flag.String("tokens", "", "docker-tls: JSON from docker tls ca token --count N --format json")
	authKeyFile := flag.String("auth-key-file", "", "cfssl: a file holding the auth key (hex) of the client profile (a file, not argv: it is a secret)")
	clients := flag.Int("clients", 20, "concurrent clients")
	n := flag.Int("n", 2000, "enrollments")
	populate := flag.String("populate", "", "fill this docker-tls service database (path or postgres:// URL) instead of measuring")
	flag.Parse()
	var err error
	if *populate != "" {
		err = fill(*populate, *n)
	} else {
		err = run(*url, *caFile, *tokensFile, *authKeyFile, *clients, *n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "caload:", err)
		os.Exit(1)
	}
}

func run(url, caFile, tokensFile, authKeyFile string, clients, n int) error {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	ca, err := pki.ParseCertificate(caPEM)
	if err != nil {
		return err
	}
	tokens, key, err := credentials(tokensFile, authKeyFile, n)
	if err != nil {
		return err
	}
	work := make(chan int, n)
	for i := range n {
		work <- i
	}
	close(work)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      []error
		wg        sync.WaitGroup
	)
	host := strings.Split(strings.TrimPrefix(url, "https://"), ":")[0]
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One client per worker: its own connection, kept alive.
			hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
				TLSClientConfig: pki.ClientTLS(ca, host, nil), MaxIdleConnsPerHost: 1}}
			for i := range work {
				t0 := time.Now()
				var tok string
				if tokens != nil {
					tok = tokens[i]
				}
				err := enroll(hc, url, tok, key)
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					latencies = append(latencies, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(latencies)
	p := func(q float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(q*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	fmt.Printf("n=%d clients=%d rate=%.0f p50_ms=%.1f p99_ms=%.1f errors=%d\n", n, clients, float64(len(latencies))/elapsed.Seconds(), p(0.5), p(0.99), len(errs))
	if len(errs) > 0 {
		fmt.Fprintln(os.Stderr, "caload: first error:", errs[0])
	}
	return nil
}

// credentials reads what the enrollments authenticate with: n tokens
// minted by docker tls ca token, or cfssl's auth key.
func credentials(tokensFile, authKeyFile string, n int) (tokens []string, key []byte, err error) {
	switch {
	case tokensFile != "":
		data, err := os.ReadFile(tokensFile)
		if err != nil {
			return nil, nil, err
		}
		var minted []struct{ Token string }
		if err := json.Unmarshal(data, &minted); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", tokensFile, err)
		}
		for _, m := range minted {
			tokens = append(tokens, m.Token)
		}
		if len(tokens) < n {
			return nil, nil, fmt.Errorf("%d tokens for %d enrollments", len(tokens), n)
		}
		return tokens, nil, nil
	case authKeyFile != "":
		data, err := os.ReadFile(authKeyFile)
		if err != nil {
			return nil, nil, err
		}
		if key, err = hex.DecodeString(strings.TrimSpace(string(data))); err != nil {
			return nil, nil, fmt.Errorf("-auth-key-file: %w", err)
		}
		return nil, key, nil
	}
	return nil, nil, errors.New("give -tokens (docker-tls) or -auth-key-file (cfssl)")
}

// enroll makes a key and CSR and has the service sign it: with a token
// (docker-tls) or an HMAC of the request (cfssl).
func enroll(hc *http.Client, url, token string, authKey []byte) error {
	k, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(k, "load", pki.SANs{})
	if err != nil {
		return err
	}
	sr, _ := json.Marshal(remoteca.SignRequest{CertificateRequest: remoteca.EncodeCSR(csr), Profile: "client"})
	ar := remoteca.AuthenticatedRequest{Timestamp: time.Now().Unix(), Request: sr}
	if token != "" {
		ar.Token = []byte(token)
	} else {
		mac := hmac.New(sha256.New, authKey)
		mac.Write(sr)
		ar.Token = mac.Sum(nil)
	}
	body, _ := json.Marshal(ar)
	resp, err := hc.Post(url+"/api/v1/cfssl/authsign", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var env struct {
		Success bool
		Result  remoteca.SignResult
		Errors  []remoteca.ResponseError
	}
	if err := json.Unmarshal(raw, &env); err != nil || !env.Success {
		return fmt.Errorf("%s: %s", resp.Status, raw)
	}
	if _, err := pki.ParseCertificate([]byte(env.Result.Certificate)); err != nil {
		return err
	}
	return nil
}

// fill adds n tokens (minted, never handed out) and n inventory rows to a
// service database, the way a long-lived service accumulates them.
func fill(where string, n int) error {
	ctx := context.Background()
	db, err := remoteca.OpenDB(ctx, where)
	if err != nil {
		return err
	}
	defer db.Close()
	for left := n; left > 0; left -= 10000 {
		if _, _, err := db.NewBatch([]byte("bench"), remoteca.TokenOptions{Profile: pki.ClientProfile, CN: "old", TTL: time.Hour, Uses: 1}, min(left, 10000)); err != nil {
			return err
		}
	}
	now := time.Now()
	for i := range n {
		serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		rec := &remoteca.Issued{Serial: fmt.Sprintf("%x", serial), CN: fmt.Sprintf("old-%d", i), Profile: "client",
			NotAfter: now.Add(24 * time.Hour), Source: "127.0.0.1", IssuedAt: now, PublicKey: fmt.Sprintf("%064x", i)}
		if err := db.Record(ctx, rec); err != nil {
			return err
		}
	}
	fmt.Printf("populated %s: %d tokens, %d inventory rows\n", where, n, n)
	return nil
}
