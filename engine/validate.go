package engine

import (
	"fmt"
	"path"
	"strings"
)

// CheckTLSDir accepts a directory on the host for the TLS files only when
// it is a clean absolute path of portable file-name characters (letters,
// digits, '.', '_', '-', '/') and not a system directory itself.
//
// The path goes into shell scripts run as root (quoted there too), into
// the systemd drop-in's ExecStart, where whitespace splits words and '%'
// and '$' expand, and into the backup's list of files, which teardown
// restores or removes: a path that is not exactly what it looks like
// could make teardown remove a file docker-tls never wrote.
func CheckTLSDir(dir string) error {
	switch {
	case dir == "":
		return fmt.Errorf("is empty: give an absolute directory such as %s", DefaultTLSDir)
	case !strings.HasPrefix(dir, "/"):
		return fmt.Errorf("%q is not an absolute path: give one such as %s", dir, DefaultTLSDir)
	}
	for _, r := range dir {
		if !portable(r) && r != '/' {
			return fmt.Errorf("%q holds %q: use only letters, digits, '.', '_', '-' and '/'", dir, r)
		}
	}
	for _, elem := range strings.Split(dir, "/") {
		if elem == ".." {
			return fmt.Errorf("%q holds '..': give the directory it means, as a clean absolute path", dir)
		}
	}
	if clean := path.Clean(dir); clean != dir {
		return fmt.Errorf("%q is not a clean path: give it as %s", dir, clean)
	}
	if systemDir(dir) {
		return fmt.Errorf("%q is a system directory: give a directory of its own, such as %s", dir, DefaultTLSDir)
	}
	return nil
}

func portable(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// systemDir is true for the directories a TLS directory must never be
// (their subdirectories are fine: /etc/docker/tls is the default).
func systemDir(dir string) bool {
	switch dir {
	case "/", "/etc", "/usr", "/bin", "/sbin", "/boot", "/proc", "/sys", "/dev", "/var", "/run":
		return true
	}
	// /lib, /lib32, /lib64, /libx32, …
	return strings.HasPrefix(dir, "/lib") && !strings.Contains(dir[1:], "/")
}

// nameRule is docker/cli's rule for context names, which engine names
// are too (an engine's context has its name): ^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$.
func nameRule(name string) bool {
	alnum := func(c rune) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	if len(name) < 2 {
		return false
	}
	for i, c := range name {
		if !alnum(c) && (i == 0 || !strings.ContainsRune("_.+-", c)) {
			return false
		}
	}
	return true
}

// ValidateName refuses an engine name that is not also a valid context
// name, before it is used as a file name under the engines' directory.
func ValidateName(name string) error {
	if !nameRule(name) {
		return fmt.Errorf("%q is not an engine name: names are two or more letters, digits and '_', '.', '+', '-', starting with a letter or digit", name)
	}
	return nil
}
