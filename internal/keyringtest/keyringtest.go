// Package keyringtest is an in-memory stand-in for the OS keyring, for unit
// tests of the packages that keep keys there. The real Secret Service is
// exercised by the keystore integration tests and the e2e suite.
package keyringtest

import (
	"errors"
	"sync"

	gokeyring "github.com/zalando/go-keyring"
)

// ErrLocked is what Set returns while FailSet is on.
var ErrLocked = errors.New("the keyring is locked")

// ErrNoBus is what every call returns while Unreachable is on, as godbus
// says it when there is no session bus.
var ErrNoBus = errors.New("exec: \"dbus-launch\": executable file not found in $PATH")

// Backend implements keystore.Backend in memory.
type Backend struct {
	mu          sync.Mutex
	m           map[string]string
	failSet     bool
	unreachable bool
}

// New returns an empty keyring.
func New() *Backend { return &Backend{m: map[string]string{}} }

// FailSet makes every Set fail (a locked or absent keyring) until called with false.
func (b *Backend) FailSet(fail bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failSet = fail
}

// Unreachable makes every call fail, as on a machine with no Secret
// Service, until called with false.
func (b *Backend) Unreachable(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unreachable = on
}

// Len is the number of entries.
func (b *Backend) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

func (b *Backend) Set(service, user, secret string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unreachable {
		return ErrNoBus
	}
	if b.failSet {
		return ErrLocked
	}
	b.m[service+"/"+user] = secret
	return nil
}

func (b *Backend) Get(service, user string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unreachable {
		return "", ErrNoBus
	}
	v, ok := b.m[service+"/"+user]
	if !ok {
		return "", gokeyring.ErrNotFound
	}
	return v, nil
}

func (b *Backend) Delete(service, user string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unreachable {
		return ErrNoBus
	}
	if _, ok := b.m[service+"/"+user]; !ok {
		return gokeyring.ErrNotFound
	}
	delete(b.m, service+"/"+user)
	return nil
}
