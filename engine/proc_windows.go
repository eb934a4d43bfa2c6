package engine

import "syscall"

func masterProcAttr() *syscall.SysProcAttr { return nil }
