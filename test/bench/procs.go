package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process the benchmark started. Its output goes to a
// log file in the run directory, kept for post-mortems.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// Pid returns the process id.
func (p *proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to 15 s (webhookd drains its in-flight
// deliveries), then kills. It is safe to call twice.
func (p *proc) stop() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// procSet owns every child process of the run, so one call stops them all
// (at the end, on error and on Ctrl-C).
type procSet struct {
	dir string // run directory: logs, stores, sockets

	mu    sync.Mutex
	procs []*proc
}

// start runs bin with args and env (added to the bench's own). Children
// get their own process group, so a terminal Ctrl-C reaches only the
// bench, which then stops them in order; Pdeathsig kills them if the bench
// dies without doing so.
func (ps *procSet) start(name, bin string, args []string, env ...string) (*proc, error) {
	logPath := filepath.Join(ps.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); close(p.done) }()
	ps.mu.Lock()
	ps.procs = append(ps.procs, p)
	ps.mu.Unlock()
	return p, nil
}

// stopAll stops every process still running, newest first (webhookd
// before the NATS and Redis it needs to drain).
func (ps *procSet) stopAll() {
	ps.mu.Lock()
	procs := ps.procs
	ps.procs = nil
	ps.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitFor polls ok every 20 ms until it returns true, p exits or timeout
// passes.
func waitFor(ctx context.Context, p *proc, timeout time.Duration, what string, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ok() {
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited while waiting for %s; see %s", p.name, what, p.log)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready after %s", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// dialOK reports whether network/addr accepts connections.
func dialOK(network, addr string) bool {
	c, err := net.DialTimeout(network, addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// buildBinaries builds webhookd from the working tree and nats-server at
// the version go.mod pins (the one webhookd embeds) into dir. A prebuilt
// webhookd (--webhookd) skips the first build.
func buildBinaries(ctx context.Context, dir, webhookdBin string) (webhookd, natsServer string, err error) {
	natsServer = filepath.Join(dir, "nats-server")
	builds := [][]string{{"build", "-o", natsServer, "github.com/nats-io/nats-server/v2"}}
	webhookd = webhookdBin
	if webhookd == "" {
		webhookd = filepath.Join(dir, "webhookd")
		builds = append(builds, []string{"build", "-o", webhookd, "./cmd/webhookd"})
	}
	for _, args := range builds {
		out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
		if err != nil {
			return "", "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return webhookd, natsServer, nil
}

// waitLine scans p's log until match accepts a line, waiting up to
// timeout, and returns what match extracted: how the bench learns the
// addresses webhookd and its sinks picked for port 0.
func waitLine(ctx context.Context, p *proc, timeout time.Duration, match func(line string) (string, bool)) (string, error) {
	var found string
	err := waitFor(ctx, p, timeout, p.name+" address", func() bool {
		f, err := os.Open(p.log)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if v, ok := match(sc.Text()); ok {
				found = v
				return true
			}
		}
		return false
	})
	if err != nil {
		return "", errors.Join(err, fmt.Errorf("see %s", p.log))
	}
	return found, nil
}
