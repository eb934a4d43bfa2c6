package agent

import (
	"fmt"
	"os"
	"sync"
)

// LogFile is the background agent's log (agent.log), kept under a size cap:
// past it the file becomes agent.log.1 (replacing an older one) and a new
// agent.log starts, so an agent that runs for months and logs every
// connection stays within twice the cap on disk. The descriptors given to
// OpenLogFile (stdout and stderr) are pointed at each new file, so that
// anything the process writes outside the logger, a panic included, lands
// in the current log too.
type LogFile struct {
	path    string
	max     int64
	follow  []int
	mu      sync.Mutex
	f       *os.File
	size    int64
	rotated int
}

// OpenLogFile appends to path, rotating it once it exceeds max bytes.
func OpenLogFile(path string, max int64, follow ...int) (*LogFile, error) {
	l := &LogFile{path: path, max: max, follow: follow}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *LogFile) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("agent log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("agent log: %w", err)
	}
	for _, fd := range l.follow {
		if err := redirect(int(f.Fd()), fd); err != nil {
			f.Close()
			return fmt.Errorf("agent log: point descriptor %d at %s: %w", fd, l.path, err)
		}
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Write appends p, rotating first if p would take the file past the cap.
func (l *LogFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size > 0 && l.size+int64(len(p)) > l.max {
		// A failed rotation keeps logging to the current file.
		if err := os.Rename(l.path, l.path+".1"); err == nil {
			old := l.f
			if err := l.open(); err == nil {
				old.Close()
				l.rotated++
			} else {
				l.f = old
			}
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

// Close closes the current file.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
