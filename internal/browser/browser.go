// Package browser opens a URL in the person's web browser, where there is
// one: the sign-in page of the device flow. It never waits for the
// browser, and says when it cannot open one so the caller prints the URL
// (which it does anyway: a browser on another screen is easy to miss).
package browser

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
)

// ErrNoDisplay is a machine where no browser can be shown: a Linux or BSD
// session without DISPLAY or WAYLAND_DISPLAY (over SSH, in a container).
var ErrNoDisplay = errors.New("no display to open a browser on")

// Open starts the browser on url and returns without waiting for it.
func Open(url string) error {
	argv, err := command(runtime.GOOS, os.Getenv, url)
	if err != nil {
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// command is the program that opens url on goos, given the environment.
func command(goos string, getenv func(string) string, url string) ([]string, error) {
	switch goos {
	case "darwin":
		return []string{"open", url}, nil
	case "windows":
		return []string{"rundll32", "url.dll,FileProtocolHandler", url}, nil
	}
	if getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == "" {
		return nil, ErrNoDisplay
	}
	return []string{"xdg-open", url}, nil
}
