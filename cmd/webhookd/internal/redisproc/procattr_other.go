//go:build !linux

package redisproc

import "syscall"

// childProcAttr is childProcAttr in procattr_linux.go without Pdeathsig,
// which only Linux has.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
