package agent

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func TestAgentServiceFor(t *testing.T) {
	// A home directory with the characters each format must escape.
	home := `/home/J & "K" 100%$x`
	exe := home + "/.docker/cli-plugins/docker-tls"
	cfg := home + "/.docker"
	args := []string{"agent", "--foreground", "--idle-lock", "8h0m0s"}

	linux, err := ServiceFor("linux", home, exe, cfg, args)
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

	mac, err := ServiceFor("darwin", home, exe, cfg, args)
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
		if _, err := ServiceFor(goos, home, exe, cfg, args); err == nil {
			t.Errorf("%s: no error", goos)
		}
	}
}
