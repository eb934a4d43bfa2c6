package browser

import (
	"errors"
	"strings"
	"testing"
)

func TestCommand(t *testing.T) {
	env := func(vars ...string) func(string) string {
		return func(k string) string {
			for _, v := range vars {
				if strings.HasPrefix(v, k+"=") {
					return strings.TrimPrefix(v, k+"=")
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		goos string
		env  func(string) string
		want string
		err  error
	}{
		{"linux", env(), "", ErrNoDisplay},
		{"linux", env("DISPLAY=:0"), "xdg-open https://id/device", nil},
		{"freebsd", env("WAYLAND_DISPLAY=wayland-0"), "xdg-open https://id/device", nil},
		{"darwin", env(), "open https://id/device", nil},
		{"windows", env(), "rundll32 url.dll,FileProtocolHandler https://id/device", nil},
	} {
		argv, err := command(tc.goos, tc.env, "https://id/device")
		if !errors.Is(err, tc.err) || strings.Join(argv, " ") != tc.want {
			t.Errorf("%s: %v %v, want %q %v", tc.goos, argv, err, tc.want, tc.err)
		}
	}
}
