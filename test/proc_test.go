package test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var soak = flag.Bool("soak", false, "run the long fault tests (make soak)")

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// webhookdBinary builds cmd/webhookd (with -race) once per test run and
// returns its path.
func webhookdBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "whbin")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "webhookd")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, "../cmd/webhookd").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("building webhookd: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a running `webhookd serve`.
type proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

// startWebhookd runs `webhookd serve` against the env's NATS and Redis;
// extra flags are appended (later flags win).
func (e *env) startWebhookd(extra ...string) *proc {
	e.t.Helper()
	args := []string{"serve",
		"--nats-url", e.nats.ClientURL(),
		"--redis-url", e.redis.URL,
		"--http-addr", "127.0.0.1:0",
		"--allow-insecure-endpoints",
		"--api-key", "fault-test-key-0123456789=default",
		"--log-format", "json",
		"--log-level", "info",
		"--batch-linger", "50ms",
		"--backoff-base", "200ms",
		"--backoff-max", "2s",
	}
	args = append(args, "--partitions", strconv.Itoa(testPartitions()))
	return startProc(e.t, append(args, extra...)...)
}

// startProc runs the webhookd binary with args; it is killed (with its
// process group: a managed redis-server) when the test ends.
func startProc(t testing.TB, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(webhookdBinary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = childEnv()
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting webhookd: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("webhookd output:\n%s", tail(p.out.String(), 4000))
		}
	})
	return p
}

func (p *proc) signal(s os.Signal) { _ = p.cmd.Process.Signal(s) }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and returns how long the process took to exit and
// its exit error.
func (p *proc) stop(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start), p.err
	case <-time.After(timeout):
		return time.Since(start), errors.New("did not exit")
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

var _ io.Writer = (*lockedBuffer)(nil)

// childEnv is the environment minus what would point the test elsewhere:
// WEBHOOKD_* (every serve flag has an environment twin, and
// WEBHOOKD_REDIS_URL or WEBHOOKD_NATS_URL would reach the developer's
// shared services) and proxy settings (axios, under the SDK, honours
// HTTP_PROXY; the server is on loopback).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch upper := strings.ToUpper(name); {
		case strings.HasPrefix(upper, "WEBHOOKD_"):
			continue
		case upper == "HTTP_PROXY" || upper == "HTTPS_PROXY" || upper == "ALL_PROXY":
			continue
		}
		env = append(env, kv)
	}
	return env
}
