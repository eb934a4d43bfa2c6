package fsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// errWouldBlock is returned by tryLock when another process holds the lock.
var errWouldBlock = errors.New("lock held by another process")

// ErrLockHeld matches (errors.Is) the error of a Lock whose timeout passed
// while another process held the lock.
var ErrLockHeld = errors.New("the lock is held by another process")

type heldError struct{ msg string }

func (e heldError) Error() string        { return e.msg }
func (e heldError) Is(target error) bool { return target == ErrLockHeld }

// Lock takes an exclusive advisory lock on path (created 0600 if missing),
// waiting up to timeout. The OS releases it if the process dies, so a crash
// never leaves a stale lock. Call the returned function to release it.
func Lock(path string, timeout time.Duration) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), PrivateDir); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, PrivateFile)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	deadline := time.Now().Add(timeout)
	delay := 5 * time.Millisecond
	for {
		err := tryLock(f)
		if err == nil {
			return func() { _ = unlock(f); _ = f.Close() }, nil
		}
		if !errors.Is(err, errWouldBlock) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, heldError{fmt.Sprintf("another docker-tls process has held %s for %s; try again when it has finished", path, timeout)}
		}
		time.Sleep(delay)
		delay = min(delay*2, 100*time.Millisecond)
	}
}
