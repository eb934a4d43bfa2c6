// Package fsutil owns the one way docker-tls writes files: atomically (temp
// file in the same directory, fsync, rename), with explicit permissions, and
// never over an existing file unless asked. Keys and CAs depend on it.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrExists is returned when a target exists and overwriting was not asked for.
var ErrExists = errors.New("already exists")

// ErrExchangeUnsupported is returned by Exchange where the OS or the file
// system cannot swap two paths atomically.
var ErrExchangeUnsupported = errors.New("atomic exchange is not supported here")

// File modes for what docker-tls writes.
const (
	PrivateFile fs.FileMode = 0o600 // keys, anything secret
	PublicFile  fs.FileMode = 0o644 // certificates, snippets
	PrivateDir  fs.FileMode = 0o700
)

// WriteFile writes data to path atomically: readers see the old file or the
// new one, never a torn one, and a crash leaves at most a stray temp file.
// Without overwrite it fails with ErrExists if path exists, checked by the
// final link so that two concurrent writers cannot both win.
func WriteFile(path string, data []byte, perm fs.FileMode, overwrite bool) error {
	return WriteFileVia(filepath.Dir(path), path, data, perm, overwrite)
}

// WriteFileVia is WriteFile with the temporary file in tmpDir, which must be
// on path's file system. Secrets are staged in a private directory of their
// own, so that what a killed write leaves is found in one place.
func WriteFileVia(tmpDir, path string, data []byte, perm fs.FileMode, overwrite bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(tmpDir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op after a successful rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if overwrite {
		if err := os.Rename(tmpName, path); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return syncDir(dir)
	}
	// A hard link fails if the target exists: an atomic create-exclusive.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s %w", path, ErrExists)
		}
		// File systems without hard links: check, then rename.
		if _, statErr := os.Lstat(path); statErr == nil {
			return fmt.Errorf("%s %w", path, ErrExists)
		}
		if err := os.Rename(tmpName, path); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return syncDir(dir)
}

// syncDir makes a rename durable. Not all platforms can open a directory for
// sync; that is not an error worth failing a write for.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}

// ReplaceDir puts directory next where live is, in one step where it can:
// with live present the two are exchanged (renameat2 on Linux), so next
// then holds the old contents; where exchanging is not possible live is
// first moved to aside (a window a journal's recovery must cover). Without
// live, next is simply renamed into place. onAside, if set, runs right after
// that move, for crash-test step names.
func ReplaceDir(next, live, aside string, onAside func()) error {
	if _, err := os.Lstat(live); err == nil {
		err := Exchange(next, live)
		if err == nil || !errors.Is(err, ErrExchangeUnsupported) {
			return err
		}
		if err := os.Rename(live, aside); err != nil {
			return err
		}
		if onAside != nil {
			onAside()
		}
	}
	return os.Rename(next, live)
}

// MkdirPrivate creates dir and its parents with mode 0700 and makes sure an
// existing dir is not readable by others.
func MkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, PrivateDir); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, PrivateDir); err != nil {
			return fmt.Errorf("restrict %s to its owner: %w", dir, err)
		}
	}
	return nil
}

// CheckAbsent returns ErrExists (wrapped with the first path found) if any of
// paths exists, so that a multi-file write can refuse before writing anything.
func CheckAbsent(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s %w", p, ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", p, err)
		}
	}
	return nil
}

// ReadSmall reads a file a user named that should be small (a
// certificate, a key, a password), refusing one over limit bytes instead
// of reading a mistaken path to the end.
func ReadSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}
