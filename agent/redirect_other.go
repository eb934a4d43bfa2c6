//go:build !linux && !windows

package agent

import "golang.org/x/sys/unix"

// redirect makes descriptor to refer to the file of descriptor from.
func redirect(from, to int) error { return unix.Dup2(from, to) }
