package redisproc

import "syscall"

// childProcAttr puts the managed redis-server in its own process group,
// so a terminal's Ctrl-C reaches only webhookd, which then stops redis
// last, after the dispatcher has drained. Pdeathsig makes the kernel
// send SIGTERM to redis-server if webhookd dies without stopping it (kill
// -9), instead of leaving an orphan holding the data directory: SIGTERM,
// not SIGKILL, so that it still fsyncs its AOF, while the next webhookd
// waits for it on the lock files. The signal follows the OS thread that
// started the child: see Server.start.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
