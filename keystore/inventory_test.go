package keystore

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker-tls/docker-tls/internal/keyringtest"
	"github.com/docker-tls/docker-tls/pki"
)

func TestInventory(t *testing.T) {
	s := Stores{Dir: t.TempDir(), Backend: keyringtest.New()}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	put := func(kind, id string) {
		t.Helper()
		ks, err := s.Open(kind, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ks.Put(id, key, false); err != nil {
			t.Fatal(err)
		}
	}
	put(KindFile, "ctx-used")
	put(KindKeyring, "ca-team-abc")
	put(KindFile, "ctx-left")
	put(KindKeyring, "ctx-broken-123")
	uses := []Use{
		{Ref: Ref{Store: KindFile, ID: "ctx-used"}, Type: "ECDSA P-256", Owner: "context/used"},
		{Ref: Ref{Store: KindKeyring, ID: "ca-team-abc"}, Type: "ECDSA P-256", Owner: "ca/team"},
		{Ref: Ref{Store: KindKeyring, ID: "ctx-gone"}, Owner: "context/gone"},
	}
	keys, err := s.Inventory(uses, func(id string) string {
		if id == "ctx-broken-123" {
			return "context/broken"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, k := range keys {
		got[k.Store+"/"+k.ID] = k.Owner + " " + k.Status
	}
	want := map[string]string{
		"file/ctx-used":          "context/used ok",
		"keyring/ca-team-abc":    "ca/team ok",
		"keyring/ctx-gone":       "context/gone missing",
		"file/ctx-left":          " orphan",
		"keyring/ctx-broken-123": "context/broken owner damaged",
	}
	if len(got) != len(want) {
		t.Errorf("inventory %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	if !slices.IsSortedFunc(keys, func(x, y Key) int { return strings.Compare(x.Owner+x.ID, y.Owner+y.ID) }) {
		t.Error("the inventory is not sorted by owner")
	}

	stray := filepath.Join(s.Dir, ".ctx-used.tmp-123")
	if err := os.WriteFile(stray, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := s.Strays(); !slices.Equal(got, []string{stray}) {
		t.Errorf("Strays = %v, want %v", got, []string{stray})
	}
}
