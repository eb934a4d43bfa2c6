package records

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/docker-tls/docker-tls/internal/fsutil"
)

type rec struct {
	N int    `json:"n"`
	S string `json:"s"`
}

func TestDir(t *testing.T) {
	d := Dir[rec]{Path: filepath.Join(t.TempDir(), "recs")}
	if names, err := d.Names(); err != nil || names != nil {
		t.Fatalf("no directory: %v, %v", names, err)
	}
	if _, err := d.Get("a"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get of none: %v", err)
	}
	for _, n := range []string{"b", "a"} {
		if err := d.Put(n, &rec{N: len(n), S: n}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := d.Get("a"); err != nil || *got != (rec{1, "a"}) {
		t.Fatalf("Get(a) = %+v, %v", got, err)
	}
	for path, mode := range map[string]os.FileMode{d.Path: 0o700 | os.ModeDir, d.File("a"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode(), err, mode)
		}
	}
	// A lock file, a temporary file and a directory are not records.
	release, err := d.Lock("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Lock("a"); !errors.Is(err, fsutil.ErrLockHeld) {
		t.Errorf("a second lock: %v, want ErrLockHeld", err)
	}
	release()
	_ = os.WriteFile(filepath.Join(d.Path, ".a.json.tmp"), nil, 0o600)
	_ = os.Mkdir(filepath.Join(d.Path, "dir.json"), 0o700)
	if names, err := d.Names(); err != nil || !reflect.DeepEqual(names, []string{"a", "b"}) {
		t.Errorf("Names = %q, %v", names, err)
	}
	if err := os.WriteFile(d.File("bad"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	var damaged *DamagedError
	if _, err := d.Get("bad"); !errors.As(err, &damaged) || damaged.File != d.File("bad") {
		t.Errorf("Get of a damaged record: %v", err)
	}
	if err := d.Remove("a"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("a"); err != nil {
		t.Errorf("removing a record twice: %v", err)
	}
	if _, err := d.Get("a"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get after Remove: %v", err)
	}
}
