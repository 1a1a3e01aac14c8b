package test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// redisServersOn returns the pids of the redis-server processes whose
// working directory is dir (redis-server changes to its --dir), from
// /proc. Zombies have no working directory and do not count.
func redisServersOn(t *testing.T, dir string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("reading /proc (the test counts redis-servers there; Linux only): %v", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "redis-server" {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && cwd == dir {
			pids = append(pids, pid)
		}
	}
	return pids
}

// kill9 kills webhookd as kill -9 would, leaving its redis-server to
// the parent-death signal, and waits until it is gone.
func kill9(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// managedRedisPid is the pid of p's managed redis-server, from its log.
func managedRedisPid(t *testing.T, p *proc) int {
	t.Helper()
	return int(p.logLine(t, "managed redis-server started")["pid"].(float64))
}

// slowRedisServer writes a redis-server into a new directory, to put
// first in PATH: it runs the real one as its child and, told to stop,
// waits delay before passing SIGTERM on, like a redis-server flushing a
// large AOF on a loaded machine (the issue measured orphans living
// 1.5–2 s).
func slowRedisServer(t *testing.T, delay time.Duration) (pathDir string) {
	t.Helper()
	real, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed: %v", err)
	}
	dir := t.TempDir()
	script := "#!/bin/sh\n" +
		real + ` "$@" &
pid=$!
trap 'sleep ` + strconv.Itoa(int(delay.Seconds())) + `; kill -TERM $pid' TERM
wait $pid
wait $pid
`
	if err := os.WriteFile(filepath.Join(dir, "redis-server"), []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startServeEnv is startProc for `webhookd serve` on dir with env added
// to the child's environment.
func startServeEnv(t *testing.T, dir string, env ...string) *proc {
	t.Helper()
	p := &proc{t: t, out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(webhookdBinary(t), "serve", "--data-dir", dir,
		"--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0",
		"--api-key", testKey+"=default", "--allow-insecure-endpoints", "--log-format", "json")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(childEnv(), env...)
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

// Issue 13: after kill -9 of webhookd, its managed redis-server dies with
// it, and an immediate restart on the same --data-dir serves, with never
// two redis-servers on one AOF directory. In the first round the orphan
// is a plain redis-server, which must exit by itself (the parent-death
// signal). In the second it takes 5 s to begin its shutdown: the restart
// must wait for it, not refuse to start (a redis-server still answers on
// the socket) nor start a second one beside it.
func TestManagedRedisRestartAfterKill(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	redisDir := filepath.Join(dir, "redis")
	t.Cleanup(func() {
		for _, pid := range redisServersOn(t, redisDir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	p, _ := serveManaged(t, dir)
	orphan := managedRedisPid(t, p)
	kill9(t, p)
	p, api := serveManaged(t, dir) // fails the test if the restart exits
	if st := call(t, "GET", api+"/api/webhooks", "", nil); st != http.StatusOK {
		t.Fatalf("after an immediate restart: GET /api/webhooks = %d, want 200", st)
	}
	running := managedRedisPid(t, p)
	if got := redisServersOn(t, redisDir); !slices.Equal(got, []int{running}) {
		t.Fatalf("redis-servers on %s after the restart = %v, want only the new one, %d (the orphan was %d)", redisDir, got, running, orphan)
	}
	if took, err := p.stop(30 * time.Second); err != nil {
		t.Fatalf("webhookd after SIGTERM: %v (after %v)", err, took)
	}

	slow := "PATH=" + slowRedisServer(t, 5*time.Second) + string(os.PathListSeparator) + os.Getenv("PATH")
	p = startServeEnv(t, dir, slow)
	p.logLine(t, "webhookd serving")
	orphans := redisServersOn(t, redisDir)
	kill9(t, p)
	p = startServeEnv(t, dir, slow)
	for !strings.Contains(p.out.String(), `"webhookd serving"`) {
		if got := redisServersOn(t, redisDir); len(got) > 1 {
			t.Fatalf("redis-servers on %s = %v while the orphan %v lives: a second one on the same AOF", redisDir, got, orphans)
		}
		if p.exited() {
			t.Fatalf("the restart exited while the orphan %v lived, want it to wait: %v", orphans, p.err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(p.out.String(), "waiting for the redis-server of an earlier webhookd") {
		t.Fatalf("the restart did not wait for the orphan %v: it exited within 5 s of its SIGTERM, so this round tested nothing", orphans)
	}
	api = "http://" + p.logLine(t, "webhookd serving")["addr"].(string)
	if st := call(t, "GET", api+"/api/webhooks", "", nil); st != http.StatusOK {
		t.Fatalf("after the orphan exited: GET /api/webhooks = %d, want 200", st)
	}
	if got := redisServersOn(t, redisDir); len(got) != 1 || slices.Equal(got, orphans) {
		t.Errorf("redis-servers on %s = %v, want one, not the orphan %v", redisDir, got, orphans)
	}
}
