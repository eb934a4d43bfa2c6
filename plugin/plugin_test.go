package plugin

import (
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/remoteca"
	"github.com/docker-tls/docker-tls/renewal"
	"github.com/docker-tls/docker-tls/rotation"
)

func TestShellQuoting(t *testing.T) {
	tricky := `/tmp/it's "odd" $HOME \ dir`
	if _, err := exec.LookPath("sh"); err == nil {
		out, err := exec.Command("sh", "-c", "printf %s "+shQuote(tricky)).Output()
		if err != nil || string(out) != tricky {
			t.Fatalf("sh round trip: %q, %v", out, err)
		}
	}
	if got := fishQuote(`a'b\c`); got != `'a\'b\\c'` {
		t.Errorf("fishQuote = %s", got)
	}
}

func TestCommonName(t *testing.T) {
	for in, want := range map[string]string{
		"CN=alice":         "alice",
		"CN=a,O=Example":   "CN=a,O=Example",
		"O=Example,CN=bob": "O=Example,CN=bob",
		"":                 "",
	} {
		if got := commonName(in); got != want {
			t.Errorf("commonName(%q) = %q", in, got)
		}
	}
}

func TestLifetime(t *testing.T) {
	if d, err := lifetime(0); err != nil || d != 0 {
		t.Fatal(d, err)
	}
	if d, err := lifetime(30); err != nil || d != 30*24*time.Hour {
		t.Fatal(d, err)
	}
	for _, bad := range []int{-1, 100*365 + 1} {
		if _, err := lifetime(bad); err == nil {
			t.Errorf("lifetime(%d) accepted", bad)
		}
	}
}

func TestParseSpanBounds(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"30d", 30 * 24 * time.Hour, ""},
		{"2w", 14 * 24 * time.Hour, ""},
		{"12h", 12 * time.Hour, ""},
		{"106751d", 106751 * 24 * time.Hour, ""},
		{"106752d", 0, "longer than 292 years"},
		{"99999999999999999999d", 0, "give a span"},
		{"-1d", 0, "give a span"},
		{"-1h", 0, "give a span"},
	} {
		got, err := parseSpan(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseSpan(%q) = %v, %v", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSpan(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestTokenOnTheCommandLineWarns(t *testing.T) {
	for in, warn := range map[string]bool{"DTLS1-abc-def": true, "file:/tmp/t": false, "env:TOKEN": false, "": false} {
		if got := (remoteOptions{token: in}).argvWarning(); (got != "") != warn || (warn && !strings.Contains(got, "file:PATH")) {
			t.Errorf("token %q: %q", in, got)
		}
	}
}

func TestHint(t *testing.T) {
	full := fmt.Errorf("journal: %w", &fs.PathError{Op: "write", Path: "/c/tls/tmp/.x.tmp-1", Err: syscall.ENOSPC})
	expired := &renewal.ExpiredError{Context: "prod", CAURL: "https://ca:8888", NotAfter: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("other"), "other"},
		{full, "no space left on the device holding /c: free some space and run the command again (nothing was half written)"},
		{fmt.Errorf("prod: %w", expired), "prod: the certificate expired on 2026-01-02, so it cannot authenticate a renewal: get a new token (docker tls ca token) and run docker tls enroll prod --force --ca-url https://ca:8888 --token …"},
		{&renewal.ExpiredError{Context: "team", CAURL: "https://ca:8888", NotAfter: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), Refusal: "the CA refused: the certificate expired 3h0m0s ago, and this service renews only valid certificates", SignIn: true},
			"the certificate expired on 2026-01-02 and was not renewed (the CA refused: the certificate expired 3h0m0s ago, and this service renews only valid certificates): a new sign-in is needed: docker tls renew team"},
		{&renewal.ExpiredError{Context: "team-build", CAURL: "https://ca:8888", NotAfter: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), SignIn: true, Catalog: "https://ca:8888", Fingerprint: "AB:CD"},
			"the certificate expired on 2026-01-02, so it cannot authenticate a renewal: a new sign-in is needed: docker tls enroll --engines --ca-url https://ca:8888 --ca-fingerprint sha256:AB:CD renews every context of that catalog (docker tls renew team-build, this one)"},
		{&renewal.CAChangedError{CA: "team"}, `the local CA "team" is not the CA in the context any more (it was re-created?): re-create the context with docker tls context create --force`},
		{renewal.ErrImported, "this context's certificate was imported, so docker tls does not know its CA: renew it where it was issued, then docker tls import --force"},
		{fmt.Errorf("%w (or give the CA certificate with --ca-file)", &castore.NotFoundError{Name: "team"}),
			"CA \"team\": no such CA (or give the CA certificate with --ca-file) (create it with `docker tls ca init team` or adopt one with `docker tls ca import`)"},
		{fmt.Errorf("CA %q %w", "team", castore.ErrExists), `CA "team" already exists: use --force to replace it (its key will be deleted)`},
		{fmt.Errorf("context %q %w", "prod", contexts.ErrExists), `context "prod" already exists: use --force to replace it`},
		{&contexts.DamagedError{Name: "prod", Err: errors.New("parsing meta.json: unexpected end of JSON input")}, "context prod is damaged (parsing meta.json: unexpected end of JSON input): docker tls rm --force prod removes it"},
		{&contexts.DamagedError{Name: "prod", Err: errors.New("bad"), Replace: true}, "context prod is damaged (bad): docker tls rm --force prod removes it, or --force replaces it"},
		{fmt.Errorf("renew: %w", &contexts.NotManagedError{Name: "other"}), `renew: context "other" was not created by docker tls (no x-docker-tls field); manage it with docker context, or adopt its files with docker tls import`},
		{fmt.Errorf("put key ca-team: %w: no D-Bus session", keystore.ErrKeyringUnavailable), "put key ca-team: the OS keyring is not available: no D-Bus session (use --keystore file on machines without one)"},
		{fmt.Errorf("key ca-team (RSA 4096, 3300 bytes, limit 2560): %w", keystore.ErrKeyTooLarge), "key ca-team (RSA 4096, 3300 bytes, limit 2560): it does not fit in this OS keyring: use --key-type ecdsa-p256 or --keystore file"},
		{fmt.Errorf("list keys: %w: /c/tls/keys/keyring-index.json (unexpected end of JSON input)", keystore.ErrIndexDamaged), "list keys: the keyring index is damaged: /c/tls/keys/keyring-index.json (unexpected end of JSON input); docker tls keys prune rebuilds it from the CAs and contexts that use keyring keys"},
		{rotation.ErrAborting, "this rotation is being aborted: finish that with --abort"},
		{rotation.ErrRetireBegun, "phase 4 (retiring the old CA) has begun: the rotation can only be finished (--continue)"},
		{&rotation.RetireError{Err: errors.New("disk full")}, "every engine and context uses the new CA, but retiring the old one failed: disk full (run --continue)"},
		{&rotation.RetireError{Err: fmt.Errorf("delete key: %w", keystore.ErrKeyringUnavailable)}, "every engine and context uses the new CA, but retiring the old one failed: delete key: the OS keyring is not available (run --continue)"},
		{&rotation.NoDBError{CA: "team"}, `the service database of CA "team", where the excluded identities are revoked, is not here: give the same --db as when the rotation began`},
		{fmt.Errorf("revoke token: %w", &remoteca.NoSuchTokenError{ID: "abc"}), `revoke token: no token with id "abc" (docker tls ca tokens ls)`},
		{&remoteca.NoSuchSerialError{Serial: "xyz", Malformed: true}, `"xyz" is not a serial: give at least 8 hex digits (docker tls ca issued ls)`},
		{&remoteca.NoSuchSerialError{Serial: "0123abcd"}, "no certificate with serial 0123abcd was issued by this service (docker tls ca issued ls)"},
		{&contexts.KeyFileError{Name: "prod", Err: errors.New("key.pem is not the key of cert.pem")}, "key.pem is not the key of cert.pem: docker tls unlock --force prod restores it from the key store"},
		{fmt.Errorf("lock: %w", &contexts.AgentModeError{Name: "prod"}), `lock: context "prod" is in agent mode: it has no key file to lock or unlock (docker tls agent lock drops keys from the agent's memory)`},
	} {
		got := hint("/c", tc.err)
		if (got == nil) != (tc.want == "") || (got != nil && got.Error() != tc.want) {
			t.Errorf("hint(%v) = %v, want %q", tc.err, got, tc.want)
		}
		// Once only: a hinted error passes through again unchanged.
		if again := hint("/c", fmt.Errorf("x: %w", got)); got != nil && again.Error() != "x: "+got.Error() {
			t.Errorf("hinted twice: %v", again)
		}
	}
}
