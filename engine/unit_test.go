package engine

import (
	"encoding/base64"
	"testing"
)

func TestDockerdError(t *testing.T) {
	for _, tc := range []struct {
		name, journal, want string
	}{
		{"unknown option in daemon.json (dockerd 20.10)",
			`time="2026-12-05T07:08:01.136691550Z" level=info msg="Starting up"
unable to configure the Docker daemon with file /etc/docker/daemon.json: the following directives don't match any configuration option: no-such-option
`, "unable to configure the Docker daemon with file /etc/docker/daemon.json: the following directives don't match any configuration option: no-such-option"},
		{"forwarding off under nspawn",
			`time="2026-12-05T06:58:38.870807087Z" level=warning msg="Enabling IP forwarding failed: open /proc/sys/net/ipv4/ip_forward: read-only file system"
time="2026-12-05T06:58:38.872827799Z" level=info msg="stopping event stream following graceful shutdown" error="<nil>" module=libcontainerd namespace=moby
failed to start daemon: Error initializing network controller: error obtaining controller instance: Enabling IP forwarding failed: open /proc/sys/net/ipv4/ip_forward: read-only file system
`, "failed to start daemon: Error initializing network controller: error obtaining controller instance: Enabling IP forwarding failed: open /proc/sys/net/ipv4/ip_forward: read-only file system"},
		{"only logrus lines: the last fatal wins over errors",
			`time="x" level=error msg="first"
time="x" level=fatal msg="Error starting daemon: \"quoted\" reason"
time="x" level=error msg="later error"
time="x" level=info msg="bye"
`, `Error starting daemon: "quoted" reason`},
		{"only logrus lines, no fatal: the last error",
			"time=\"x\" level=error msg=\"one\"\ntime=\"x\" level=error msg=\"two\"\ntime=\"x\" level=info msg=\"bye\"\n", "two"},
		{"nothing to go on: the last line", "time=\"x\" level=info msg=\"a\"\ntime=\"x\" level=info msg=\"b\"\n", `time="x" level=info msg="b"`},
		{"empty", "\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dockerdError(tc.journal); got != tc.want {
				t.Errorf("dockerdError = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseFactsUnit(t *testing.T) {
	journal := base64.StdEncoding.EncodeToString([]byte("time=\"x\" level=info msg=\"Starting up\"\nfailed to start daemon: boom\n"))
	out := "unit_LoadState=loaded\nunit_ActiveState=failed\nunit_SubState=failed\nunit_Result=exit-code\nunit_journal=" + journal + "\nhas_backup=0\n"
	f, err := parseFacts([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := UnitState{Load: "loaded", Active: "failed", Sub: "failed", Result: "exit-code", Error: "failed to start daemon: boom"}
	if f.Unit != want {
		t.Errorf("Unit = %+v, want %+v", f.Unit, want)
	}
	if err := checkUnit(f.Unit); err == nil {
		t.Error("a failed unit passed checkUnit")
	}
}
