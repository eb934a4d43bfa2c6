package remoteca

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/pki"
)

// TestTokenStores: the file store and the SQLite store keep the same rules.
func TestTokenStores(t *testing.T) {
	stores := map[string]func(t *testing.T) TokenStore{
		"file": func(t *testing.T) TokenStore { return &Tokens{Path: filepath.Join(t.TempDir(), "tokens.json")} },
		"sqlite": func(t *testing.T) TokenStore {
			s, err := OpenSQLTokens(filepath.Join(t.TempDir(), "service.db"), "")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	caRaw := []byte("CA DER")
	now := time.Now()
	client := Request{Profile: pki.ClientProfile, CN: "alice"}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			toks, _, err := s.NewBatch(caRaw, TokenOptions{Profile: pki.ClientProfile, CN: "alice", TTL: time.Hour, Uses: 2, Now: now}, 3)
			if err != nil {
				t.Fatal(err)
			}
			secret := func(i int) string { p, _ := ParseToken(toks[i]); return p.Secret }
			for range 2 {
				if _, err := s.Consume(secret(0), client, now); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Consume(secret(0), client, now); !errors.Is(err, ErrTokenUsed) {
				t.Errorf("third use of a 2-use token: %v", err)
			}
			if _, err := s.Consume(secret(1), Request{Profile: pki.ServerProfile}, now); !errors.Is(err, ErrTokenMismatch) {
				t.Errorf("server request on a client token: %v", err)
			}
			if _, err := s.Consume(secret(1), Request{Profile: pki.ClientProfile, CN: "mallory"}, now); !errors.Is(err, ErrTokenMismatch) {
				t.Errorf("another CN: %v", err)
			}
			if _, err := s.Consume(secret(1), client, now.Add(2*time.Hour)); !errors.Is(err, ErrTokenExpired) {
				t.Errorf("expired: %v", err)
			}
			if _, err := s.Consume("no-such-secret-at-all-0123456789abcdef", client, now); !errors.Is(err, ErrTokenUnknown) {
				t.Errorf("unknown: %v", err)
			}
			list, err := s.List()
			if err != nil || len(list) != 3 {
				t.Fatalf("List: %d, %v", len(list), err)
			}
			var id string
			for _, tok := range list {
				if tok.Hash == hashSecret(secret(2)) {
					id = tok.ID
				}
				if tok.Hash == hashSecret(secret(0)) && tok.Used != 2 {
					t.Errorf("used = %d, want 2", tok.Used)
				}
			}
			if _, err := s.Revoke(id[:8]); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Consume(secret(2), client, now); !errors.Is(err, ErrTokenUnknown) {
				t.Errorf("revoked: %v", err)
			}
			if _, err := s.Revoke("ffffffffffff"); err == nil || !strings.Contains(err.Error(), "no token with id") {
				t.Errorf("revoke of nothing: %v", err)
			}
		})
	}
}

// TestSQLTokensOneTimeAcrossProcesses: two handles on one database (two
// ca serve processes), 64 concurrent attempts on 10 tokens of 2 uses:
// exactly 20 succeed.
func TestSQLTokensOneTimeAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "service.db")
	a, err := OpenSQLTokens(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenSQLTokens(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	toks, _, err := a.NewBatch([]byte("CA"), TokenOptions{Profile: pki.ClientProfile, CN: "x", TTL: time.Hour, Uses: 2}, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			p, _ := ParseToken(toks[i%10])
			if _, err := s.Consume(p.Secret, Request{Profile: pki.ClientProfile}, time.Now()); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, ErrTokenUsed) {
				t.Errorf("consume: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 20 {
		t.Errorf("%d consumptions succeeded, want exactly 20", ok.Load())
	}
}

// TestSQLTokensMigrate: an older docker-tls's tokens.json is imported once,
// uses kept, and kept beside as tokens.json.migrated.
func TestSQLTokensMigrate(t *testing.T) {
	dir := t.TempDir()
	legacy := &Tokens{Path: filepath.Join(dir, "tokens.json")}
	toks, _, err := legacy.NewBatch([]byte("CA"), TokenOptions{Profile: pki.ClientProfile, CN: "x", TTL: time.Hour, Uses: 2}, 3)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ParseToken(toks[0])
	if _, err := legacy.Consume(p.Secret, Request{Profile: pki.ClientProfile}, time.Now()); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		s, err := OpenSQLTokens(filepath.Join(dir, "service.db"), legacy.Path)
		if err != nil {
			t.Fatal(err)
		}
		list, err := s.List()
		s.Close()
		if err != nil || len(list) != 3 {
			t.Fatalf("round %d: %d tokens, %v", round, len(list), err)
		}
	}
	if _, err := os.Stat(legacy.Path + ".migrated"); err != nil {
		t.Errorf("no backup: %v", err)
	}
	s, _ := OpenSQLTokens(filepath.Join(dir, "service.db"), legacy.Path)
	defer s.Close()
	if _, err := s.Consume(p.Secret, Request{Profile: pki.ClientProfile}, time.Now()); err != nil {
		t.Errorf("second use after migration: %v", err)
	}
	if _, err := s.Consume(p.Secret, Request{Profile: pki.ClientProfile}, time.Now()); !errors.Is(err, ErrTokenUsed) {
		t.Errorf("third use after migration: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "service.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("service.db: %v %v", fi.Mode(), err)
	}
}
