package plugin

import (
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

// keyInventory is every key docker-tls knows of (keystore.Inventory):
// those its CAs and contexts use, and every id either key store lists.
func (a *app) keyInventory() ([]keystore.Key, error) {
	uses, damaged, err := a.keyUses()
	if err != nil {
		return nil, err
	}
	return a.keyStores().Inventory(uses, damaged)
}

// keyUses are the keys the CAs and contexts record, and the function that
// names the unreadable CA or context an unused key id belongs to.
func (a *app) keyUses() ([]keystore.Use, func(id string) string, error) {
	var uses []keystore.Use
	cas, badCAs, err := a.cas().List()
	if err != nil {
		return nil, nil, err
	}
	for _, c := range cas {
		uses = append(uses, keystore.Use{Ref: c.KeyRef(), Type: pki.DescribeKey(c.Cert.PublicKey), Owner: "ca/" + c.Name})
	}
	list, badContexts, err := a.contexts().List()
	if err != nil {
		return nil, nil, err
	}
	for _, c := range list {
		if c.Managed() {
			uses = append(uses, keystore.Use{Ref: c.KeyOf(), Type: c.TLS.KeyType, Owner: "context/" + c.Name})
		}
	}
	return uses, func(id string) string { return damagedOwner(id, badCAs, badContexts) }, nil
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
