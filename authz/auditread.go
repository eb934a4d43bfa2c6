package authz

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"
)

// AuditFilter selects audit records.
type AuditFilter struct {
	Since  time.Time // zero: all
	User   string    // "": anyone
	Denied bool      // refusals only
}

// Match says whether f selects d.
func (f AuditFilter) Match(d Decision) bool {
	return !d.Time.Before(f.Since) && (f.User == "" || d.User == f.User) && (!f.Denied || !d.Allow)
}

// ReadAudit writes the records of the audit trail at path that f selects
// to out, one JSON line each, oldest first (PATH.1, the rotated part,
// then PATH). With follow it then waits for new records, across
// rotations, until ctx ends. A line that does not decode (a write cut
// short) is skipped.
func ReadAudit(ctx context.Context, path string, f AuditFilter, follow bool, out io.Writer) error {
	if err := copyAudit(path+".1", f, out); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && follow {
		file, err = waitFor(ctx, path)
	}
	if errors.Is(err, fs.ErrNotExist) || ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { file.Close() }()
	r := bufio.NewReader(file)
	var partial []byte
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			if err := emit(append(partial, line...), f, out); err != nil {
				return err
			}
			partial = partial[:0]
			continue
		}
		partial = append(partial, line...)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
		// Rotated: the file read so far is PATH.1 now; once it is read to
		// its end (above), go on with the new PATH.
		if moved, err := rotated(file, path); err == nil && moved {
			if rest, err := io.ReadAll(r); err == nil && len(rest) > 0 {
				partial = append(partial, rest...)
				if err := emitAll(partial, f, out); err != nil {
					return err
				}
			}
			partial = partial[:0]
			file.Close()
			if file, err = waitFor(ctx, path); err != nil {
				return nil
			}
			r.Reset(file)
		}
	}
}

func copyAudit(path string, f AuditFilter, out io.Writer) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if err := emit(sc.Bytes(), f, out); err != nil {
			return err
		}
	}
	return sc.Err()
}

func emit(line []byte, f AuditFilter, out io.Writer) error {
	var d Decision
	if json.Unmarshal(line, &d) != nil || !f.Match(d) {
		return nil
	}
	if line[len(line)-1] != '\n' {
		line = append(line, '\n')
	}
	_, err := out.Write(line)
	return err
}

func emitAll(data []byte, f AuditFilter, out io.Writer) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if err := emit(sc.Bytes(), f, out); err != nil {
			return err
		}
	}
	return nil
}

// rotated says whether path is no longer the file open.
func rotated(open *os.File, path string) (bool, error) {
	a, err := open.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return !os.SameFile(a, b), nil
}

// waitFor opens path once it exists, polling until ctx ends.
func waitFor(ctx context.Context, path string) (*os.File, error) {
	for {
		f, err := os.Open(path)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
