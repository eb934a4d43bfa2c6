package keystore

import (
	"path/filepath"
	"slices"
	"strings"
)

// Key is one private key docker tls keeps, and who uses it.
type Key struct {
	ID    string
	Type  string
	Store string
	Owner string // "ca/NAME", "context/NAME", or "" for an orphan
	// Status is one of the Key statuses below.
	Status string
}

// Key statuses.
const (
	// KeyOK is a key in its store, used by its owner.
	KeyOK = "ok"
	// KeyOrphan is in a store and used by nothing: prune removes it.
	KeyOrphan = "orphan"
	// KeyMissing is used by its owner but not in its store.
	KeyMissing = "missing"
	// KeyOwnerDamaged is named after a context or CA that cannot be read:
	// kept, since the user may repair its owner.
	KeyOwnerDamaged = "owner damaged"
)

// Use is a key an owner (a CA or a context) says it uses.
type Use struct {
	Ref
	Type, Owner string
}

// Inventory is every key docker tls knows of: those in uses, each found in
// its store or missing, and every id either store lists that nothing uses
// (the keyring's index names each entry before it is written, so this is
// every entry docker tls ever made there). damagedOwner names the owner
// that cannot be read whose key an unused id would be, or "".
func (s Stores) Inventory(uses []Use, damagedOwner func(id string) string) ([]Key, error) {
	keys := make([]Key, 0, len(uses))
	owned := map[Ref]int{}
	for _, u := range uses {
		owned[u.Ref] = len(keys)
		keys = append(keys, Key{ID: u.ID, Type: u.Type, Store: u.Store, Owner: u.Owner, Status: KeyMissing})
	}
	for _, kind := range KindNames() {
		ks, err := s.Open(kind, nil)
		if err != nil {
			return nil, err
		}
		ids, err := ks.List("")
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if i, ok := owned[Ref{Store: kind, ID: id}]; ok {
				keys[i].Status = KeyOK
				continue
			}
			k := Key{ID: id, Store: kind, Status: KeyOrphan}
			if owner := damagedOwner(id); owner != "" {
				k.Owner, k.Status = owner, KeyOwnerDamaged
			}
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(x, y Key) int { return strings.Compare(x.Owner+x.ID, y.Owner+y.ID) })
	return keys, nil
}

// Strays are temporary files a write of the file store could leave behind
// if it was killed (older versions, or a crash before its cleanup): a full
// scan, for prune only.
func (s Stores) Strays() []string {
	m, _ := filepath.Glob(filepath.Join(s.Dir, ".*.tmp-*"))
	return m
}
