//go:build !linux

package controlplane

import "syscall"

// sysProcAttr has nothing to add outside Linux, which alone has Pdeathsig:
// there a crashed test binary can leave its child processes running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
