package agent

import (
	"crypto"
	"time"
)

// heldKey is a context key the agent holds in memory, and when a
// connection last used it (--idle-lock drops it after a while unused).
type heldKey struct {
	key      crypto.Signer
	lastUsed time.Time
}

// key returns the context's key, loading it from the key store on first
// use. Connections that arrive while the key is being loaded wait for that
// one load: a burst of first connections (50 docker commands at once)
// makes one keyring request, not 50, and so at most one unlock prompt.
func (a *Agent) key(ep Endpoint) (crypto.Signer, error) {
	a.mu.Lock()
	if h, ok := a.keys[ep.KeyID]; ok {
		h.lastUsed = time.Now()
		a.mu.Unlock()
		return h.key, nil
	}
	if l, ok := a.loading[ep.KeyID]; ok {
		a.mu.Unlock()
		<-l.done
		return l.key, l.err
	}
	l := &keyLoad{done: make(chan struct{})}
	a.loading[ep.KeyID] = l
	gen := a.lockGen
	a.mu.Unlock()

	l.key, l.err = a.cfg.LoadKey(ep.KeyStore, ep.KeyID)
	a.mu.Lock()
	delete(a.loading, ep.KeyID)
	// A lock that came during the load wins: the connections that were
	// waiting get the key, memory does not keep it.
	if l.err == nil && gen == a.lockGen {
		a.keys[ep.KeyID] = &heldKey{key: l.key, lastUsed: time.Now()}
	}
	a.mu.Unlock()
	close(l.done)
	if l.err != nil {
		return nil, l.err
	}
	a.cfg.Log.Printf("context %s: key loaded from the key store into memory", ep.Name)
	return l.key, nil
}

// keyLoad is one key store request that other connections may wait on.
type keyLoad struct {
	done chan struct{}
	key  crypto.Signer
	err  error
}

// Lock drops every key from memory.
func (a *Agent) Lock() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.keys)
	a.keys = map[string]*heldKey{}
	a.lockGen++
	return n
}

func (a *Agent) idleLock() {
	if a.cfg.IdleLock <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, h := range a.keys {
		if time.Since(h.lastUsed) > a.cfg.IdleLock {
			delete(a.keys, id)
			a.cfg.Log.Printf("key %s dropped from memory after %s unused", id, a.cfg.IdleLock)
		}
	}
}
