package plugin

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
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

func TestAgentServiceFor(t *testing.T) {
	// A home directory with the characters each format must escape.
	home := `/home/J & "K" 100%$x`
	exe := home + "/.docker/cli-plugins/docker-tls"
	cfg := home + "/.docker"
	args := []string{"agent", "--foreground", "--idle-lock", "8h0m0s"}

	linux, err := agentServiceFor("linux", home, exe, cfg, args)
	if err != nil {
		t.Fatal(err)
	}
	if linux.Path != home+"/.config/systemd/user/docker-tls-agent.service" || !strings.Contains(linux.Enable, "systemctl --user enable --now docker-tls-agent") {
		t.Fatalf("linux: %+v", linux)
	}
	for _, want := range []string{
		`Environment="DOCKER_CONFIG=/home/J & \"K\" 100%%$x/.docker"` + "\n",
		`ExecStart="/home/J & \"K\" 100%%$x/.docker/cli-plugins/docker-tls" "agent" "--foreground" "--idle-lock" "8h0m0s"` + "\n",
		"WantedBy=default.target\n",
	} {
		if !strings.Contains(linux.Content, want) {
			t.Errorf("unit lacks %q:\n%s", want, linux.Content)
		}
	}

	mac, err := agentServiceFor("darwin", home, exe, cfg, args)
	if err != nil {
		t.Fatal(err)
	}
	if mac.Path != home+"/Library/LaunchAgents/com.docker-tls.agent.plist" || mac.Enable != "launchctl load -w "+mac.Path {
		t.Fatalf("darwin: %+v", mac)
	}
	// The plist must be well-formed XML whose strings come back unchanged.
	var strs []string
	d := xml.NewDecoder(strings.NewReader(mac.Content))
	d.Strict = true
	inString := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("plist is not XML: %v\n%s", err, mac.Content)
		}
		switch v := tok.(type) {
		case xml.StartElement:
			inString = v.Name.Local == "string"
		case xml.CharData:
			if inString {
				strs = append(strs, string(v))
			}
		case xml.EndElement:
			inString = false
		}
	}
	want := append(append([]string{"com.docker-tls.agent", exe}, args...), cfg)
	if strings.Join(strs, "|") != strings.Join(want, "|") {
		t.Fatalf("plist strings %q, want %q", strs, want)
	}

	for _, goos := range []string{"windows", "freebsd"} {
		if _, err := agentServiceFor(goos, home, exe, cfg, args); err == nil {
			t.Errorf("%s: no error", goos)
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

func TestDiskFull(t *testing.T) {
	full := fmt.Errorf("journal: %w", &fs.PathError{Op: "write", Path: "/c/tls/tmp/.x.tmp-1", Err: syscall.ENOSPC})
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("other"), "other"},
		{full, "no space left on the device holding /c: free some space and run the command again (nothing was half written)"},
	} {
		got := diskFull("/c", tc.err)
		if (got == nil) != (tc.want == "") || (got != nil && got.Error() != tc.want) {
			t.Errorf("diskFull(%v) = %v, want %q", tc.err, got, tc.want)
		}
	}
}
