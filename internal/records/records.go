// Package records keeps one JSON record per name in a directory: the
// laptop's engine records, the record of each CA rotation, the last
// failure of each context's automatic renewal. Each record is written
// whole, 0600 in a 0700 directory, with one atomic rename, so a reader
// sees the old record or the new one and never a part; a name is a file
// name, so the caller validates it where it enters.
package records

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/docker-tls/docker-tls/internal/fsutil"
)

// Dir holds the records of type T, one NAME.json each.
type Dir[T any] struct{ Path string }

// File is where the record of name is kept.
func (d Dir[T]) File(name string) string { return filepath.Join(d.Path, name+".json") }

// Get reads the record of name; the error wraps fs.ErrNotExist when there
// is none, and says which file is damaged when it does not parse.
func (d Dir[T]) Get(name string) (*T, error) {
	data, err := os.ReadFile(d.File(name))
	if err != nil {
		return nil, err
	}
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, &DamagedError{File: d.File(name), Err: err}
	}
	return &v, nil
}

// Put writes the record of name whole.
func (d Dir[T]) Put(name string, v *T) error {
	if err := fsutil.MkdirPrivate(d.Path); err != nil {
		return err
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFile(d.File(name), append(data, '\n'), fsutil.PrivateFile, true)
}

// Remove deletes the record of name; none is no error.
func (d Dir[T]) Remove(name string) error {
	err := os.Remove(d.File(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Names lists the names that have a record, sorted; no directory is no
// records.
func (d Dir[T]) Names() ([]string, error) {
	entries, err := os.ReadDir(d.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// Lock holds the lock of name (NAME.json.lock) until the returned
// function is called; the OS drops it if the process dies.
// fsutil.ErrLockHeld says another process holds it.
func (d Dir[T]) Lock(name string) (func(), error) {
	if err := fsutil.MkdirPrivate(d.Path); err != nil {
		return nil, err
	}
	return fsutil.Lock(d.File(name)+".lock", 0)
}

// DamagedError is a record that does not parse.
type DamagedError struct {
	File string
	Err  error
}

func (e *DamagedError) Error() string { return fmt.Sprintf("%s is damaged: %v", e.File, e.Err) }

func (e *DamagedError) Unwrap() error { return e.Err }
