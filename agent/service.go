package agent

import (
	"encoding/xml"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Service is what docker tls agent install writes: where, the file, and the
// command that enables it.
type Service struct {
	Path, Content, Enable string
}

// ServiceFor renders the login service of goos that runs exe with
// args for configDir. Paths are quoted for the format at hand (systemd's
// specifiers and quoting, XML), so a home directory with spaces, % or &
// still works.
func ServiceFor(goos, home, exe, configDir string, args []string) (Service, error) {
	switch goos {
	case "linux":
		cmdline := []string{systemdQuote(exe, false)}
		for _, arg := range args {
			cmdline = append(cmdline, systemdQuote(arg, true))
		}
		return Service{
			Path: filepath.Join(home, ".config", "systemd", "user", "docker-tls-agent.service"),
			Content: "[Unit]\nDescription=docker-tls agent: TLS keys for Docker contexts, in memory only\n\n[Service]\n" +
				"Environment=" + systemdQuote("DOCKER_CONFIG="+configDir, false) + "\n" +
				"ExecStart=" + strings.Join(cmdline, " ") + "\nRestart=on-failure\n\n[Install]\nWantedBy=default.target\n",
			Enable: "systemctl --user daemon-reload && systemctl --user enable --now docker-tls-agent",
		}, nil
	case "darwin":
		path := filepath.Join(home, "Library", "LaunchAgents", "com.docker-tls.agent.plist")
		var b strings.Builder
		str := func(v string) {
			b.WriteString("<string>")
			_ = xml.EscapeText(&b, []byte(v))
			b.WriteString("</string>")
		}
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
  <key>Label</key><string>com.docker-tls.agent</string>
  <key>ProgramArguments</key><array>`)
		str(exe)
		for _, arg := range args {
			str(arg)
		}
		b.WriteString("</array>\n  <key>EnvironmentVariables</key><dict><key>DOCKER_CONFIG</key>")
		str(configDir)
		b.WriteString("</dict>\n  <key>RunAtLoad</key><true/><key>KeepAlive</key><true/>\n</dict></plist>\n")
		return Service{Path: path, Content: b.String(), Enable: "launchctl load -w " + path}, nil
	}
	if goos == "windows" {
		return Service{}, errors.New("agent mode is not available on Windows yet (it needs named pipes, npipe://): use a context with a key file, and docker tls lock between uses")
	}
	return Service{}, fmt.Errorf("agent install writes systemd (Linux) and launchd (macOS) services; on %s start docker tls agent from your login scripts", goos)
}

// systemdQuote quotes one word for a unit file: double quotes with \ and "
// escaped and % doubled (specifiers). Where systemd expands variables (the
// arguments of ExecStart=, not its executable, not Environment=) $ is
// doubled too; systemd-analyze verify confirms both.
func systemdQuote(s string, expands bool) string {
	pairs := []string{`\`, `\\`, `"`, `\"`, "%", "%%"}
	if expands {
		pairs = append(pairs, "$", "$$")
	}
	return `"` + strings.NewReplacer(pairs...).Replace(s) + `"`
}
