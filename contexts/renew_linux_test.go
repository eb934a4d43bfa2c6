package contexts

import (
	"os"
	"syscall"
	"testing"
)

// On Linux a renew with a new key exchanges the whole TLS directory in one
// step (renameat2): the directory's inode changes. With the same key only
// cert.pem is renamed and the directory stays.
func TestRenewWithNewKeyExchangesTheDirectory(t *testing.T) {
	s := Open(t.TempDir())
	if _, err := s.Create(opts("prod")); err != nil {
		t.Fatal(err)
	}
	c, _ := s.Get("prod")
	inode := func() uint64 {
		fi, err := os.Stat(c.TLSDir)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	m := opts("prod").Meta
	first := inode()
	if err := s.Renew("prod", map[string][]byte{CertFile: []byte("c2"), KeyFile: []byte("k2")}, m); err != nil {
		t.Fatal(err)
	}
	second := inode()
	if second == first {
		t.Fatal("renew with a new key replaced files one by one, not the directory at once")
	}
	if fi, _ := os.Stat(c.TLSDir); fi.Mode().Perm() != 0o700 {
		t.Errorf("TLS directory mode %v after the exchange", fi.Mode().Perm())
	}
	if err := s.Renew("prod", map[string][]byte{CertFile: []byte("c3")}, m); err != nil {
		t.Fatal(err)
	}
	if inode() != second {
		t.Error("a renew without a new key replaced the directory")
	}
	for f, want := range map[string]string{CertFile: "c3", KeyFile: "k2", CAFile: "ca"} {
		if got, _ := s.ReadFile("prod", f); string(got) != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
}
