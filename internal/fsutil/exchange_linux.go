package fsutil

import (
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Exchange swaps two paths in one atomic step (renameat2 RENAME_EXCHANGE):
// a reader sees one whole directory or the other, and a crash leaves one of
// the two states, never a mix. It returns ErrExchangeUnsupported where the
// kernel or the file system cannot, so callers can fall back.
func Exchange(a, b string) error {
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		return errors.Join(syncDir(filepath.Dir(a)), syncDir(filepath.Dir(b)))
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EINVAL), errors.Is(err, unix.EXDEV), errors.Is(err, unix.ENOTSUP):
		return fmt.Errorf("exchange %s and %s: %w (%w)", a, b, ErrExchangeUnsupported, err)
	}
	return fmt.Errorf("exchange %s and %s: %w", a, b, err)
}
