package dbhelper

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"
)

func TestPaths(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "docker-tls")
	helper := filepath.Join(dir, Dir, Name)
	if got := Path(plugin); got != helper {
		t.Fatalf("Path(%s) = %s, want %s", plugin, got, helper)
	}
	// Without the plugin beside it, a helper stands for itself.
	if got := PluginPath(helper); got != helper {
		t.Errorf("PluginPath of a helper with no plugin = %s, want itself", got)
	}
	if err := os.WriteFile(plugin, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ exe, want string }{
		{helper, plugin},
		{plugin, plugin},
		// Named like the helper, not where one is installed.
		{filepath.Join(dir, Name), filepath.Join(dir, Name)},
		{filepath.Join(dir, "other", Name), filepath.Join(dir, "other", Name)},
	} {
		if got := PluginPath(tc.exe); got != tc.want {
			t.Errorf("PluginPath(%s) = %s, want %s", tc.exe, got, tc.want)
		}
	}
}

func TestMarkLean(t *testing.T) {
	a, b := &cobra.Command{Use: "a"}, &cobra.Command{Use: "b", Annotations: map[string]string{"other": "kept"}}
	MarkLean(a, b)
	if !IsLean(a) || !IsLean(b) || b.Annotations["other"] != "kept" {
		t.Fatalf("marked: a %v, b %v (%v)", IsLean(a), IsLean(b), b.Annotations)
	}
	if IsLean(&cobra.Command{Use: "c"}) {
		t.Fatal("an unmarked command is lean")
	}
}

// This test binary links no driver, as the plugin: a command that is not
// lean is handed to the helper, which is missing here, and the error says
// which command and where the helper was looked for. A lean command stays.
func TestHandOffWithoutHelper(t *testing.T) {
	if Linked() {
		t.Fatal("the drivers are linked into dbhelper's tests: an import brought them in")
	}
	root := &cobra.Command{Use: "tls"}
	serve := &cobra.Command{Use: "serve"}
	root.AddCommand(serve)
	MarkLean(root)
	if err := HandOff(root); err != nil {
		t.Fatalf("a lean command was handed off: %v", err)
	}
	err := HandOff(serve)
	var missing *MissingError
	if !errors.As(err, &missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("HandOff without a helper = %v, want a MissingError for a missing file", err)
	}
	exe, _ := os.Executable()
	if missing.Command != "tls serve" || missing.Path != Path(exe) {
		t.Errorf("MissingError = %+v, want command %q, path %s", missing, "tls serve", Path(exe))
	}
	want := "tls serve opens a CA's database, which docker-tls does through its helper " + Path(exe) + ": file does not exist"
	if err.Error() != want {
		t.Errorf("message:\n%s\nwant\n%s", err, want)
	}
}
