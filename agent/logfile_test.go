package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogFileRotatesAndStderrFollows(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.log")
	// Stands in for stderr: a descriptor the log points at each new file.
	stand, err := os.Create(filepath.Join(dir, "stand-in"))
	if err != nil {
		t.Fatal(err)
	}
	defer stand.Close()
	l, err := OpenLogFile(path, 1000, int(stand.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var want []string
	for i := range 60 { // 60 lines of 40 bytes: two rotations at a 1000-byte cap
		line := fmt.Sprintf("connection %04d closed after 12ms......\n", i)
		want = append(want, line)
		if _, err := l.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if l.rotated != 2 {
		t.Fatalf("%d rotations, want 2", l.rotated)
	}
	cur, _ := os.ReadFile(path)
	prev, _ := os.ReadFile(path + ".1")
	if len(cur) > 1000 || len(prev) > 1000 || len(cur) == 0 || len(prev) == 0 {
		t.Fatalf("sizes after rotation: %d and %d bytes", len(cur), len(prev))
	}
	// The newest lines are kept, in order, across the two files.
	got := string(prev) + string(cur)
	if !strings.HasSuffix(strings.Join(want, ""), got) {
		t.Fatalf("kept lines are not the latest ones in order:\n%s", got)
	}
	// What the process writes to its stderr lands in the current log.
	if _, err := stand.Write([]byte("panic: stand-in\n")); err != nil {
		t.Fatal(err)
	}
	if cur, _ := os.ReadFile(path); !strings.HasSuffix(string(cur), "panic: stand-in\n") {
		t.Fatalf("stderr did not follow the rotation:\n%s", cur)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("log mode %v", fi.Mode().Perm())
	}
}
