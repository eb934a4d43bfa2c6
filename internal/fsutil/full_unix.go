//go:build unix

package fsutil

import "golang.org/x/sys/unix"

// NearlyFull says whether the file system holding dir has less than 1 MiB
// left for this user: an I/O error there is then taken for a full disk
// (SQLite reports a write that found no space as a plain I/O error when it
// grows its shared-memory file).
func NearlyFull(dir string) bool {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return false
	}
	return uint64(st.Bavail)*uint64(st.Bsize) < 1<<20
}
