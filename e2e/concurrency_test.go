package e2e

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// runAll starts every command at once and returns their results in order.
func (e *Env) runAll(cmds [][]string) []Result {
	results := make([]Result, len(cmds))
	var wg sync.WaitGroup
	for i, args := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.TLS(args...)
		}()
	}
	wg.Wait()
	return results
}

// checkKeysConsistent asserts what concurrent runs must leave: every owner
// has exactly one key, in a store that holds it (status ok), no orphan,
// and every keyring entry docker-tls made is one keys ls lists.
func (e *Env) checkKeysConsistent(what string, owners []string, baseline []string) {
	t := e.t
	t.Helper()
	rows := e.keyRows()
	seen := map[string]int{}
	listed := map[string]bool{}
	for _, k := range rows {
		listed[k.ID] = true
		if k.Status != "ok" {
			t.Fatalf("%s: key %s (%s, owner %q) is %s; keys ls:\n%+v", what, k.ID, k.Store, k.Owner, k.Status, rows)
		}
		seen[k.Owner]++
	}
	for _, o := range owners {
		if seen[o] != 1 {
			t.Fatalf("%s: %s has %d keys; keys ls:\n%+v", what, o, seen[o], rows)
		}
	}
	if len(rows) != len(owners) {
		t.Fatalf("%s: %d keys for %d owners:\n%+v", what, len(rows), len(owners), rows)
	}
	if keyringProbe() == nil {
		for _, id := range keyringEntries(t) {
			if !listed[id] && !slices.Contains(baseline, id) {
				t.Fatalf("%s: keyring entry %s is not listed by keys ls", what, id)
			}
		}
	}
	if bad := e.keyMaterialOutside(false); len(bad) > 0 {
		t.Fatalf("%s: private key material outside the key store: %v", what, bad)
	}
}

// keyringBaseline is the docker-tls keyring entries other tests left, when
// a keyring answers.
func keyringBaseline(t testing.TB) []string {
	if keyringProbe() != nil {
		return nil
	}
	return keyringEntries(t)
}

// TestConcurrentRekeys: 10 renew --rekey of one context at once. Each
// retires the key before it, so one key is left and no orphan.
func TestConcurrentRekeys(t *testing.T) {
	need(t, "docker")
	e := NewEnv(t)
	baseline := keyringBaseline(t)
	e.MustTLS("ca", "init")
	e.MustTLS("context", "create", "busy", "--host", "tcp://127.0.0.1:2376", "--issue")
	before := keyIDOf(t, e, "context/busy")
	cmds := make([][]string, 10)
	for i := range cmds {
		cmds[i] = []string{"renew", "busy", "--rekey"}
	}
	for _, r := range e.runAll(cmds) {
		requireOK(t, r)
		e.assertNoSecrets(r)
	}
	e.checkKeysConsistent("after 10 concurrent rekeys", []string{"ca/default", "context/busy"}, baseline)
	if after := keyIDOf(t, e, "context/busy"); after == before {
		t.Fatalf("the context still has its first key %s after 10 rekeys", before)
	}
	e.MustTLS("verify", "busy", "--offline")
}

// TestOppositeMigratesBesideRenews: rounds of 3 keys migrate --to file, 3
// --to keyring and 2 renew --rekey at once. Every run succeeds (they wait
// for each other) and after each round every key is in exactly one store
// and usable: no key is lost.
func TestOppositeMigratesBesideRenews(t *testing.T) {
	need(t, "docker")
	RequireKeyring(t)
	e := NewEnv(t)
	baseline := keyringEntries(t)
	pw := e.Path("ca-pass")
	write(t, pw, "Concurrent-Passphrase-7\n")
	e.Secrets = append(e.Secrets, "Concurrent-Passphrase-7")
	e.MustTLS("ca", "init")
	e.MustTLS("context", "create", "ca", "--host", "tcp://127.0.0.1:1", "--issue")
	e.MustTLS("context", "create", "cb", "--host", "tcp://127.0.0.1:2", "--issue")
	owners := []string{"ca/default", "context/ca", "context/cb"}

	rounds := 50
	if testing.Short() {
		rounds = 5
	}
	deadline := time.Now().Add(3 * time.Minute)
	moved := 0 // keys the migrates moved, so the rounds did race real moves
	for round := range rounds {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d rounds in 3 minutes", round, rounds)
		}
		var cmds [][]string
		for range 3 {
			cmds = append(cmds,
				[]string{"keys", "migrate", "--to", "file", "--passphrase-file", pw},
				[]string{"keys", "migrate", "--to", "keyring", "--passphrase-file", pw})
		}
		cmds = append(cmds,
			[]string{"renew", "ca", "--rekey", "--passphrase-file", pw},
			[]string{"renew", "cb", "--rekey", "--passphrase-file", pw})
		for _, r := range e.runAll(cmds) {
			requireOK(t, r)
			e.assertNoSecrets(r)
			var n int
			lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
			if _, err := fmt.Sscanf(lines[len(lines)-1], "Moved %d key(s)", &n); err == nil {
				moved += n
			}
		}
		what := fmt.Sprintf("round %d", round)
		e.checkKeysConsistent(what, owners, baseline)
		for _, c := range []string{"ca", "cb"} {
			if r := e.TLS("verify", c, "--offline"); r.Code != 0 {
				t.Fatalf("%s: %s", what, r)
			}
		}
	}
	// The CA key still signs, wherever the last migrate left it.
	e.MustTLS("client", "issue", "probe", "--out", e.Path("probe"), "--passphrase-file", pw)
	stores := e.MustTLS("keys", "ls", "--format", "{{.Store}}").Stdout
	if moved < rounds {
		t.Fatalf("the migrates moved %d keys in %d rounds: they did not race", moved, rounds)
	}
	t.Logf("%d rounds, %d keys moved; stores at the end: %s", rounds, moved, strings.Join(strings.Fields(stores), " "))
}

// TestConcurrentCreatesOfOneName: 20 creates of one name give one winner,
// 19 clear errors, and only the winner's key.
func TestConcurrentCreatesOfOneName(t *testing.T) {
	need(t, "docker")
	e := NewEnv(t)
	baseline := keyringBaseline(t)
	e.MustTLS("ca", "init")
	cmds := make([][]string, 20)
	for i := range cmds {
		cmds[i] = []string{"context", "create", "same", "--host", fmt.Sprintf("tcp://127.0.0.1:%d", 3000+i), "--issue"}
	}
	won := -1
	for i, r := range e.runAll(cmds) {
		if r.Code == 0 {
			if won >= 0 {
				t.Fatalf("two creates of one name both won: %d and %d", won, i)
			}
			won = i
			continue
		}
		requireFail(t, r, "already exists")
	}
	if won < 0 {
		t.Fatal("no create of the name won")
	}
	e.checkKeysConsistent("after 20 creates of one name", []string{"ca/default", "context/same"}, baseline)
	host := strings.TrimSpace(e.MustTLS("ls", "--format", "{{.Host}}").Stdout)
	if want := fmt.Sprintf("tcp://127.0.0.1:%d", 3000+won); host != want {
		t.Fatalf("the context points at %s, but the create that won gave %s", host, want)
	}
	e.MustTLS("verify", "same", "--offline")
}
