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
	file, err := openAudit(ctx, path, follow)
	if file == nil || err != nil {
		return err
	}
	t := &auditTail{path: path, f: f, out: out, file: file, r: bufio.NewReader(file)}
	defer func() { t.file.Close() }()
	for {
		if err := t.drain(); err != nil {
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
		if more, err := t.followRotation(ctx); !more || err != nil {
			return err
		}
	}
}

// openAudit opens the trail at path, with follow waiting for it to
// appear. No file and no error: there is nothing to read (no trail, or ctx
// ended while waiting).
func openAudit(ctx context.Context, path string, follow bool) (*os.File, error) {
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && follow {
		file, err = waitFor(ctx, path)
	}
	if errors.Is(err, fs.ErrNotExist) || ctx.Err() != nil {
		if file != nil {
			file.Close()
		}
		return nil, nil
	}
	return file, err
}

// auditTail reads one trail file as it grows, and the next after a
// rotation.
type auditTail struct {
	path string
	f    AuditFilter
	out  io.Writer
	file *os.File
	r    *bufio.Reader
	// partial is a line read without its end yet: a write in progress.
	partial []byte
}

// drain emits every complete line up to the file's end, keeping a line
// cut short for the next call.
func (t *auditTail) drain() error {
	for {
		line, err := t.r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			if err := emit(append(t.partial, line...), t.f, t.out); err != nil {
				return err
			}
			t.partial = t.partial[:0]
			continue
		}
		t.partial = append(t.partial, line...)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	}
}

// followRotation goes on with the new PATH once the file read so far was
// rotated to PATH.1 and read to its end. It returns false when there is no
// new file to go on with (ctx ended while waiting for it).
func (t *auditTail) followRotation(ctx context.Context) (bool, error) {
	if moved, err := rotated(t.file, t.path); err != nil || !moved {
		return true, nil
	}
	if rest, err := io.ReadAll(t.r); err == nil && len(rest) > 0 {
		t.partial = append(t.partial, rest...)
		if err := emitAll(t.partial, t.f, t.out); err != nil {
			return false, err
		}
	}
	t.partial = t.partial[:0]
	t.file.Close()
	file, err := waitFor(ctx, t.path)
	if err != nil {
		return false, nil
	}
	t.file = file
	t.r.Reset(file)
	return true, nil
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
