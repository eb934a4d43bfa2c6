package remoteca

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/docker-tls/docker-tls/internal/fsutil"
)

// Issued is one certificate the service signed.
type Issued struct {
	Serial   string    `json:"serial"`
	CN       string    `json:"cn"`
	Profile  string    `json:"profile"`
	SANs     []string  `json:"sans,omitempty"`
	NotAfter time.Time `json:"notAfter"`
	Token    string    `json:"token,omitempty"` // token id, never the secret
	AuthKey  string    `json:"authKey,omitempty"`
	Renews   string    `json:"renews,omitempty"` // serial of the certificate this one replaced
	Source   string    `json:"source"`
	IssuedAt time.Time `json:"issuedAt"`
}

// Inventory is an append-only JSON-lines log of issued certificates: one
// short append per issuance, whatever the size of the history.
type Inventory struct {
	Path string
	mu   sync.Mutex
}

// Add appends one record under a lock.
func (inv *Inventory) Add(rec Issued) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if err := fsutil.MkdirPrivate(filepath.Dir(inv.Path)); err != nil {
		return err
	}
	release, err := fsutil.Lock(inv.Path+".lock", 30*time.Second)
	if err != nil {
		return err
	}
	defer release()
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(inv.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, fsutil.PrivateFile)
	if err != nil {
		return fmt.Errorf("record issued certificate: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("record issued certificate: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// List reads every record, oldest first. A torn last line (a crash in the
// middle of an append) is skipped.
func (inv *Inventory) List() ([]Issued, error) {
	f, err := os.Open(inv.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Issued
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var rec Issued
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			continue
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}
