package plugin

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

func newKeysCommand(a *app) *cobra.Command {
	cmd := groupCommand("keys", "List private keys, move them between key stores, remove orphans")
	cmd.AddCommand(newKeysListCommand(a), newKeysMigrateCommand(a), newKeysPruneCommand(a))
	return cmd
}

// keyView is one private key docker-tls keeps, and who uses it.
type keyView struct {
	ID    string
	Type  string
	Store string
	Owner string // "ca/NAME", "context/NAME", or "" for an orphan
	// Status is "ok", "orphan" (in a store, used by nothing), "missing"
	// (used, but not in its store) or "owner damaged" (named after a
	// context or CA that cannot be read).
	Status string
}

// Key statuses.
const (
	keyOK      = "ok"
	keyOrphan  = "orphan"
	keyMissing = "missing"
	keyDamaged = "owner damaged"
)

// keyInventory is every key docker-tls knows of: those its CAs and
// contexts use, and every id either key store lists (the keyring's index
// names each entry before it is written, so this is every entry docker-tls
// ever made there).
func (a *app) keyInventory() ([]keyView, error) {
	var views []keyView
	owned := map[keystore.Ref]int{}
	cas, badCAs, err := a.cas().List()
	if err != nil {
		return nil, err
	}
	for _, c := range cas {
		owned[c.KeyRef()] = len(views)
		views = append(views, keyView{ID: c.KeyID, Type: pki.DescribeKey(c.Cert.PublicKey), Store: c.KeyStore, Owner: "ca/" + c.Name, Status: keyMissing})
	}
	list, badContexts, err := a.contexts().List()
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		if c.Managed() {
			owned[c.KeyOf()] = len(views)
			views = append(views, keyView{ID: c.TLS.KeyID, Type: c.TLS.KeyType, Store: c.TLS.KeyStore, Owner: "context/" + c.Name, Status: keyMissing})
		}
	}
	for _, kind := range keystore.KindNames() {
		ks, err := a.keyStore(kind, nil)
		if err != nil {
			return nil, err
		}
		ids, err := ks.List("")
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if i, ok := owned[keystore.Ref{Store: kind, ID: id}]; ok {
				views[i].Status = keyOK
				continue
			}
			v := keyView{ID: id, Store: kind, Status: keyOrphan}
			if owner := damagedOwner(id, badCAs, badContexts); owner != "" {
				v.Owner, v.Status = owner, keyDamaged
			}
			views = append(views, v)
		}
	}
	slices.SortFunc(views, func(x, y keyView) int { return strings.Compare(x.Owner+x.ID, y.Owner+y.ID) })
	return views, nil
}

// damagedOwner names the CA or context that cannot be read and whose key
// id is, so that nothing deletes the key of something the user may repair.
func damagedOwner(id string, badCAs, badContexts map[string]error) string {
	for name := range badContexts {
		if contexts.IsKeyOf(id, name) {
			return "context/" + name
		}
	}
	for name := range badCAs {
		if strings.HasPrefix(id, "ca-"+name+"-") {
			return "ca/" + name
		}
	}
	return ""
}
