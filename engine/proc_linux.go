package engine

import "syscall"

// masterProcAttr: the ssh master is in a process group of its own, so a
// Ctrl-C at the terminal does not cut the connection a rollback needs, and
// dies with docker tls, even by SIGKILL, instead of holding a connection
// nobody uses.
func masterProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
