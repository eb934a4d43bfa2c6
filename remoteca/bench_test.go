package remoteca

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// BenchmarkEnroll: enrollments per second at one service (SQLite), by
// one-time token and by sign-in (an ID token verified against the
// provider's keys, which go-oidc caches after the first fetch), with 20
// clients at once. Each enrollment makes a fresh P-256 key and CSR on the
// client side, as a laptop does; the tokens and ID tokens are made before
// the clock starts. make bench prints the ratio (goal: sign-in at least
// 0.8 of token).
func BenchmarkEnroll(b *testing.B) {
	b.Run("token", func(b *testing.B) {
		f := newFixture(b)
		toks := (&dbFixture{ca: f.ca}).tokens(b, f.srv.DB, TokenOptions{}, b.N)
		c := *f.client
		ca, err := c.FetchCA(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		runEnrollments(b, func(i int) error {
			key, _ := pki.GenerateKey(pki.ECDSAP256)
			csr, err := pki.NewCSR(key, fmt.Sprintf("laptop-%d", i), pki.SANs{})
			if err != nil {
				return err
			}
			_, err = c.Sign(context.Background(), ca, Auth{Token: toks[i]}, csr, pki.ClientProfile, nil)
			return err
		})
	})
	b.Run("sign-in", func(b *testing.B) {
		f := newFixture(b)
		p := newFakeProvider(b)
		f.srv.OIDC = &OIDC{Issuer: p.srv.URL, ClientID: "docker-tls"}
		if err := f.srv.OIDC.Connect(context.Background(), p.srv.Client()); err != nil {
			b.Fatal(err)
		}
		ids := make([]string, b.N)
		for i := range ids {
			ids[i] = p.token(b, map[string]any{"email": fmt.Sprintf("user%d@example.com", i), "groups": []string{"dev"}, "jti": fmt.Sprint(i)}, nil)
		}
		c := *f.client
		ca, err := c.FetchCA(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		runEnrollments(b, func(i int) error {
			key, _ := pki.GenerateKey(pki.ECDSAP256)
			_, err := c.SignIn(context.Background(), ca, ids[i], key)
			return err
		})
		// The keys are fetched once and cached, not per sign-in.
		if n := p.keysServed.Load(); n > 2 {
			b.Errorf("the provider's keys were fetched %d times for %d sign-ins", n, b.N)
		}
	})
}

// runEnrollments runs enroll(0…b.N-1) from 20 clients at once and reports
// enrollments/s.
func runEnrollments(b *testing.B, enroll func(i int) error) {
	var next atomic.Int64
	var failed atomic.Value
	// RunParallel starts parallelism × GOMAXPROCS goroutines.
	b.SetParallelism(max(1, 20/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1) - 1)
			if err := enroll(i); err != nil {
				failed.Store(err)
			}
		}
	})
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "enrollments/s")
}
