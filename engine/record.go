package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/docker-tls/docker-tls/internal/records"
)

// Record is what the laptop keeps of an engine it set up: where it is and
// how to reach it again, never a secret. The host keeps its own backup.
type Record struct {
	Name          string     `json:"name"`
	Dest          string     `json:"dest"`
	SSH           SSHOptions `json:"ssh"`
	Context       string     `json:"context"`
	CA            string     `json:"ca"`
	CAFingerprint string     `json:"caFingerprint"`
	Host          string     `json:"host"` // tcp://ADDR:PORT the context uses
	Port          int        `json:"port"`
	TLSDir        string     `json:"tlsDir"`
	Mode          Mode       `json:"mode"`
	SANs          []string   `json:"sans"`
	Serial        string     `json:"serial"`
	NotAfter      time.Time  `json:"notAfter"`
	Backup        string     `json:"backup"`
	Updated       time.Time  `json:"updated"`
	// Status is StatusReady once setup finished; StatusSettingUp is
	// written before the host is touched, so an interrupted setup is
	// listed and can be run again or torn down.
	Status string `json:"status"`
}

// Record statuses.
const (
	StatusSettingUp = "setting up"
	StatusReady     = "ready"
)

// Records are the engine records under DIR ($DOCKER_CONFIG/tls/engines),
// one file per engine, each written whole with one rename.
type Records struct{ Dir string }

func (r Records) dir() records.Dir[Record] { return records.Dir[Record]{Path: r.Dir} }

// Put writes rec.
func (r Records) Put(rec *Record) error {
	if err := ValidateName(rec.Name); err != nil {
		return err
	}
	return r.dir().Put(rec.Name, rec)
}

// ErrNoEngine is an engine name with no record.
var ErrNoEngine = errors.New("no such engine")

// Get reads the record of name.
func (r Records) Get(name string) (*Record, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	rec, err := r.dir().Get(name)
	var damaged *records.DamagedError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("engine %q: %w", name, ErrNoEngine)
	case errors.As(err, &damaged):
		return nil, fmt.Errorf("%s is damaged (%v): remove it and run docker tls engine setup again", damaged.File, damaged.Err)
	case err != nil:
		return nil, err
	}
	if err := CheckTLSDir(rec.TLSDir); err != nil {
		return nil, fmt.Errorf("%s is damaged (its TLS directory %v): remove it and run docker tls engine setup again", r.dir().File(name), err)
	}
	return rec, nil
}

// List reads every record, by name; a damaged one is reported beside the
// others, not instead of them.
func (r Records) List() ([]*Record, map[string]error, error) {
	names, err := r.dir().Names()
	if err != nil {
		return nil, nil, err
	}
	var out []*Record
	bad := map[string]error{}
	for _, name := range names {
		rec, err := r.Get(name)
		if err != nil {
			bad[name] = err
			continue
		}
		out = append(out, rec)
	}
	return out, bad, nil
}

// Remove deletes the record of name.
func (r Records) Remove(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	return r.dir().Remove(name)
}
