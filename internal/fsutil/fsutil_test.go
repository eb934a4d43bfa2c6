package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key.pem")
	if err := WriteFile(p, []byte("one"), PrivateFile, false); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != PrivateFile {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	if err := WriteFile(p, []byte("two"), PrivateFile, false); !errors.Is(err, ErrExists) {
		t.Fatalf("overwrite without asking: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "one" {
		t.Fatalf("content changed to %q", b)
	}
	if err := WriteFile(p, []byte("two"), PublicFile, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("content %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}

func TestWriteFileExclusiveUnderRace(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ca.pem")
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if WriteFile(p, []byte("x"), PublicFile, false) == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d writers won, want 1", wins)
	}
}

func TestMkdirPrivateAndCheckAbsent(t *testing.T) {
	base := t.TempDir()
	d := filepath.Join(base, "a", "b")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := MkdirPrivate(d); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(d); fi.Mode().Perm() != PrivateDir {
		t.Fatalf("mode %v", fi.Mode())
	}
	if err := CheckAbsent(filepath.Join(d, "x"), filepath.Join(d, "y")); err != nil {
		t.Fatal(err)
	}
	if err := CheckAbsent(filepath.Join(d, "x"), d); !errors.Is(err, ErrExists) {
		t.Fatalf("existing dir not reported: %v", err)
	}
}

func TestLockExcludes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	release, err := Lock(p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(p, 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "another docker-tls process") {
		t.Fatalf("second lock: %v", err)
	}
	release()
	release2, err := Lock(p, time.Second)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	release2()
}
