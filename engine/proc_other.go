//go:build unix && !linux

package engine

import "syscall"

// masterProcAttr: a process group of its own, so a Ctrl-C does not cut the
// connection a rollback needs. There is no parent-death signal here: a
// killed docker tls leaves the master until its connection drops.
func masterProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
