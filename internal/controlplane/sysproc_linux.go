package controlplane

import "syscall"

// sysProcAttr makes the kernel kill a child process when the test binary
// that started it dies, even by SIGKILL or a test timeout.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
