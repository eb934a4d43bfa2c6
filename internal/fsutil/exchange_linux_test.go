package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestExchange(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "name"), []byte(filepath.Base(d)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := Exchange(a, b); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(a, "name")); string(got) != "b" {
		t.Fatalf("a holds %q after the exchange", got)
	}
	if got, _ := os.ReadFile(filepath.Join(b, "name")); string(got) != "a" {
		t.Fatalf("b holds %q after the exchange", got)
	}
	err := Exchange(a, filepath.Join(dir, "missing"))
	if err == nil || errors.Is(err, ErrExchangeUnsupported) {
		t.Fatalf("exchange with a missing path: %v", err)
	}
}
