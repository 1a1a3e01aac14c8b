package test

import (
	"net/http"
	"os"
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
		t.Skipf("no /proc: %v", err)
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

// Issue 13: after kill -9 of webhookd, its managed redis-server dies with
// it, and an immediate restart on the same --data-dir serves, with never
// two redis-servers on one AOF directory. The second round stops the
// orphan (SIGSTOP) before the kill, as a loaded machine or a long AOF
// fsync would slow it: the restart must wait for it, not start a second
// redis-server beside it, and go ahead once it has exited by itself.
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

	orphan = running
	if err := syscall.Kill(orphan, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	kill9(t, p)
	p = startProc(t, "serve", "--data-dir", dir,
		"--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0",
		"--api-key", testKey+"=default", "--allow-insecure-endpoints", "--log-format", "json")
	var seen []int
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.out.String(), "waiting for the redis-server of an earlier webhookd") && !p.exited() {
		if seen = redisServersOn(t, redisDir); len(seen) > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s the restart neither waits for the stopped orphan %d nor has exited; redis-servers on %s: %v", orphan, redisDir, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := redisServersOn(t, redisDir); len(got) > 1 {
		t.Fatalf("redis-servers on %s while the orphan %d is stopped = %v: a second one started on the same AOF", redisDir, orphan, got)
	}
	if p.exited() {
		t.Fatalf("the restart exited while the orphan %d was stopped, want it to wait: %v", orphan, p.err)
	}
	if err := syscall.Kill(orphan, syscall.SIGCONT); err != nil { // it exits on its pending SIGTERM
		t.Fatal(err)
	}
	api = "http://" + p.logLine(t, "webhookd serving")["addr"].(string)
	if st := call(t, "GET", api+"/api/webhooks", "", nil); st != http.StatusOK {
		t.Fatalf("after the orphan exited: GET /api/webhooks = %d, want 200", st)
	}
	running = managedRedisPid(t, p)
	if got := redisServersOn(t, redisDir); !slices.Equal(got, []int{running}) {
		t.Errorf("redis-servers on %s = %v, want only the new one, %d (the orphan was %d)", redisDir, got, running, orphan)
	}
}
