package contexts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func opts(name string) CreateOptions {
	return CreateOptions{
		Name: name, Host: "tcp://127.0.0.1:2376", Description: "test",
		CA: []byte("ca"), Cert: []byte("cert"), Key: []byte("key"),
		Meta: Meta{KeyStore: "file", KeyID: "ctx-" + name, Subject: "CN=alice"},
	}
}

func TestCreateGetListRemove(t *testing.T) {
	s := Open(t.TempDir())
	if _, err := s.Create(opts("prod")); err != nil {
		t.Fatal(err)
	}
	c, err := s.Get("prod")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Managed() || c.Host != "tcp://127.0.0.1:2376" || c.Description != "test" || c.TLS.KeyID != "ctx-prod" || c.TLS.Version != 1 {
		t.Fatalf("got %+v %+v", c, c.TLS)
	}
	if c.Locked() || !c.HasFile(CAFile) || !c.HasFile(CertFile) {
		t.Fatalf("files %v", c.Files)
	}
	if fi, err := os.Stat(filepath.Join(c.TLSDir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key copy: %v %v", fi, err)
	}
	if _, err := s.Create(opts("prod")); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	o := opts("prod")
	o.Host, o.Force = "tcp://10.0.0.1:2376", true
	replaced, err := s.Create(o)
	if err != nil || replaced == nil || replaced.Host != "tcp://127.0.0.1:2376" {
		t.Fatalf("replace: %v %+v", err, replaced)
	}
	if err := s.SetKey("prod", nil); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Get("prod"); !c.Locked() {
		t.Fatal("not locked")
	}
	if ca, _ := s.ReadFile("prod", CAFile); string(ca) != "ca" {
		t.Fatal("lock lost ca.pem")
	}
	if err := s.SetKey("prod", []byte("key")); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Get("prod"); c.Locked() {
		t.Fatal("still locked")
	}
	if _, err := s.Create(opts("dev")); err != nil {
		t.Fatal(err)
	}
	list, errs, err := s.List()
	if err != nil || len(errs) != 0 || len(list) != 2 || list[0].Name != "dev" || list[1].Host != "tcp://10.0.0.1:2376" {
		t.Fatalf("list %v %v %v", list, errs, err)
	}
	if err := s.Remove("prod"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("prod"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after remove: %v", err)
	}
	if _, err := os.Stat(c.TLSDir); !os.IsNotExist(err) {
		t.Fatalf("TLS dir left behind: %v", err)
	}
	if err := s.Remove("prod"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
}

// crashAt makes Create stop dead after the named step, as a killed process
// would (the deferred lock release stands for the OS dropping the flock).
func crashAt(step string) func(string) {
	return func(s string) {
		if s == step {
			panic("crash at " + s)
		}
	}
}

func TestCreateIsWholeOrAbsentAfterACrash(t *testing.T) {
	for _, step := range []string{"removed-old", "wrote-tls"} {
		t.Run(step, func(t *testing.T) {
			s := Open(t.TempDir())
			if _, err := s.Create(opts("prod")); err != nil {
				t.Fatal(err)
			}
			o := opts("prod")
			o.Force, o.Cert, o.Step = true, []byte("new cert"), crashAt(step)
			func() {
				defer func() { _ = recover() }()
				_, _ = s.Create(o)
			}()
			// The context is absent, never half there.
			if _, err := s.Get("prod"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("after crash at %s: %v", step, err)
			}
			list, errs, _ := s.List()
			if len(list) != 0 || len(errs) != 0 {
				t.Fatalf("list after crash: %v %v", list, errs)
			}
			// And the next create (no --force needed) succeeds whole.
			o.Step, o.Force = nil, false
			if _, err := s.Create(o); err != nil {
				t.Fatal(err)
			}
			if cert, _ := s.ReadFile("prod", CertFile); string(cert) != "new cert" {
				t.Fatalf("cert %q", cert)
			}
		})
	}
}

func TestConcurrentCreates(t *testing.T) {
	s := Open(t.TempDir())
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Create(opts(fmt.Sprintf("ctx%02d", i)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("ctx%02d: %v", i, err)
		}
	}
	// Two of the same name: one winner, one clear error.
	var mu sync.Mutex
	var wins, losses int
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Create(opts("same"))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins++
			} else if errors.Is(err, ErrExists) {
				losses++
			} else {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || losses != 1 {
		t.Fatalf("wins %d losses %d", wins, losses)
	}
	list, _, _ := s.List()
	if len(list) != 21 {
		t.Fatalf("%d contexts", len(list))
	}
}

func TestParseHost(t *testing.T) {
	tests := []struct {
		in, want, warn, err string
	}{
		{"tcp://engine.example.com:2376", "tcp://engine.example.com:2376", "", ""},
		{"tcp://engine.example.com", "tcp://engine.example.com:2376", "", ""},
		{"tcp://[::1]:2376", "tcp://[::1]:2376", "", ""},
		{"https://10.0.0.1:2376", "tcp://10.0.0.1:2376", "", ""},
		{"tcp://10.0.0.1:2375", "tcp://10.0.0.1:2375", "2375", ""},
		{"engine:2376", "", "", "needs a scheme"},
		{"unix:///var/run/docker.sock", "", "", "tcp://"},
		{"ssh://me@host", "", "", "tcp://"},
		{"tcp://:2376", "", "", "no host name"},
		{"tcp://h:99999", "", "", "not a TCP port"},
		{"tcp://h:2376/path", "", "", "only tcp://HOST:PORT"},
		{"", "", "", "required"},
	}
	for _, tt := range tests {
		got, warn, err := ParseHost(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseHost(%q) err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want || !strings.Contains(warn, tt.warn) || (tt.warn == "" && warn != "") {
			t.Errorf("ParseHost(%q) = %q, %q, %v", tt.in, got, warn, err)
		}
	}
}

func TestRenewSwapsFiles(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir)
	if _, err := s.Create(opts("prod")); err != nil {
		t.Fatal(err)
	}
	m := opts("prod").Meta
	m.Subject = "CN=renewed"
	before, _ := s.Get("prod")
	// A staging directory a crash left behind for this context goes away.
	stale := filepath.Join(dir, "tls", "tmp", "renew@prod@123")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Renew("prod", map[string][]byte{CertFile: []byte("new cert"), KeyFile: []byte("new key")}, m); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "tls", "tmp", "*")); len(left) != 0 {
		t.Errorf("staging left behind: %v", left)
	}
	if fi, _ := os.Stat(filepath.Join(before.TLSDir, KeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem mode %v", fi.Mode().Perm())
	}
	c, _ := s.Get("prod")
	cert, _ := s.ReadFile("prod", CertFile)
	key, _ := s.ReadFile("prod", KeyFile)
	ca, _ := s.ReadFile("prod", CAFile)
	if string(cert) != "new cert" || string(key) != "new key" || string(ca) != "ca" || c.TLS.Subject != "CN=renewed" {
		t.Fatalf("after renew: %q %q %q %+v", cert, key, ca, c.TLS)
	}
	// A locked context stays locked: no key.pem appears.
	if err := s.SetKey("prod", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Renew("prod", map[string][]byte{CertFile: []byte("newer"), KeyFile: []byte("k")}, m); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Get("prod"); !c.Locked() {
		t.Fatal("renew unlocked the context")
	}
	entries, _ := os.ReadDir(c.TLSDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("temp file left in the TLS dir: %s", e.Name())
		}
	}
}

func TestStampMovesWhenContextsComeAndGo(t *testing.T) {
	s := Open(t.TempDir())
	before := s.Stamp()
	if _, err := s.Create(opts("stamped")); err != nil {
		t.Fatal(err)
	}
	created := s.Stamp()
	if created == before || created == "" {
		t.Fatalf("create left the stamp at %q", created)
	}
	if s.Stamp() != created {
		t.Fatal("the stamp moved without a change")
	}
	// Coarse file-system clocks could give the removal the same time.
	time.Sleep(20 * time.Millisecond)
	if err := s.Remove("stamped"); err != nil {
		t.Fatal(err)
	}
	if s.Stamp() == created {
		t.Fatal("remove left the stamp unchanged")
	}
}
