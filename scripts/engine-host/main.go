// Command engine-host boots one real Debian engine host for make demo (see
// internal/enginehost) and keeps it until SIGTERM or SIGINT, then stops it
// and removes everything it made. It prints one line once the host is up:
//
//	ready ADDR SSH_CONFIG
//
// Usage: engine-host DIR (DIR receives the ssh key and config), from the
// repository's top directory. Root only.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/docker-tls/docker-tls/internal/enginehost"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: engine-host DIR")
		os.Exit(2)
	}
	if missing := enginehost.Missing(); len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "engine-host: needs %s (scripts/deps.sh, as root)\n", strings.Join(missing, ", "))
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	rootfs, err := enginehost.BuildRootfs("scripts/engine-rootfs.sh")
	if err != nil {
		fmt.Fprintln(os.Stderr, "engine-host:", err)
		os.Exit(1)
	}
	c, err := enginehost.NewClient(filepath.Join(os.Args[1], "ssh"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "engine-host:", err)
		os.Exit(1)
	}
	hosts, err := enginehost.Start(rootfs, c, 1)
	stop := func() {
		for _, h := range hosts {
			if err := h.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "engine-host:", err)
			}
		}
	}
	if err != nil {
		stop()
		fmt.Fprintln(os.Stderr, "engine-host:", err)
		os.Exit(1)
	}
	fmt.Printf("ready %s %s\n", hosts[0].Addr, c.Config)
	<-sig
	stop()
}
