package chaos

import "syscall"

// childAttr makes the kernel kill a child process when the test binary dies,
// so that a crashed test run leaves no workers or NATS servers behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
