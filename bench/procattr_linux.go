package bench

import "syscall"

// childProcAttr makes the kernel stop the idle proxy if the bench dies without cleaning up.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
