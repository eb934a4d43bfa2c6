package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mountSmallConfig puts the Env's DOCKER_CONFIG on its own tmpfs, just big
// enough for the plugin and a little state, so a test can fill it.
func (e *Env) mountSmallConfig() {
	t := e.t
	t.Helper()
	saved := filepath.Join(e.Dir, "config-before-tmpfs")
	if err := os.Rename(e.ConfigDir, saved); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.ConfigDir, 0o700); err != nil {
		t.Fatal(err)
	}
	size := int64(4 << 20)
	for _, b := range []string{pluginBinary, helperBinary} {
		fi, err := os.Stat(b)
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "docker-tls-e2e-full", e.ConfigDir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (%v): %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", e.ConfigDir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", e.ConfigDir, err, out)
		}
	})
	if out, err := exec.Command("cp", "-a", saved+"/.", e.ConfigDir).CombinedOutput(); err != nil {
		t.Fatalf("copy the config onto the tmpfs: %v: %s", err, out)
	}
}

// fill takes all but about free bytes of the filesystem under dir, and
// returns a function that gives the space back.
func fill(t testing.TB, dir string, free int64) (release func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for range 1 << 12 { // at most 256 MiB; the tmpfs is far smaller
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(max(n-free, 0)); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFullDisk runs every multi-store command on a DOCKER_CONFIG with no
// room or almost none. Each either works or exits non-zero with one
// sentence; either way no private key is left outside the key store, and
// once there is room again the next command finds the stores whole.
func TestFullDisk(t *testing.T) {
	need(t, "docker", "secret-tool", "mount")
	needRoot(t)
	RequireKeyring(t)
	for _, store := range []string{"keyring", "file"} {
		t.Run(store, func(t *testing.T) {
			baseline := keyringEntries(t)
			e := NewEnv(t)
			if store == "file" {
				e.UseFileKeystore()
			}
			e.mountSmallConfig()
			e.MustTLS("ca", "init")
			e.MustTLS("ca", "init", "spare")
			failed := 0
			for _, sc := range crashScenarios() {
				for _, free := range []int64{0, 4 << 10, 12 << 10, 24 << 10} {
					what := fmt.Sprintf("%s with %d KiB free", sc.name, free>>10)
					sc.setup(e)
					release := fill(t, e.ConfigDir, free)
					r := e.TLS(sc.args...)
					e.assertNoSecrets(r)
					if r.Code != 0 {
						failed++
						msg := strings.TrimSpace(r.Stderr)
						if strings.Count(msg, "\n") > 1 || !strings.Contains(msg, "no space left on the device holding "+e.ConfigDir) {
							t.Fatalf("%s: the error should be one sentence naming the full disk:\n%s", what, r)
						}
						if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine") {
							t.Fatalf("%s: %s", what, r)
						}
					}
					// Even before there is room again, no key material
					// lies outside the key store and the 0700 scratch dirs.
					if bad := e.keyMaterialOutside(false); len(bad) > 0 {
						t.Fatalf("%s: private key material left outside the key store: %v", what, bad)
					}
					release()
					e.checkAfterCrash(what, baseline)
				}
			}
			t.Logf("%s key store: %d of %d runs failed for want of space; nothing left behind", store, failed, 4*len(crashScenarios()))
			if failed == 0 {
				t.Fatal("no run failed: the disk was never full")
			}
		})
	}
}
