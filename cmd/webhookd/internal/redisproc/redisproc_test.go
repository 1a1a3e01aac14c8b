package redisproc

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// shortDir is a temporary directory with a short path: the socket lives
// in it, and socket paths are limited to 108 bytes (t.TempDir's are long).
func shortDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "rp")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func start(tb testing.TB, cfg Config, log zerolog.Logger) *Server {
	tb.Helper()
	s, err := Start(context.Background(), cfg, log)
	if err != nil {
		tb.Fatalf("Start(%+v) = %v", cfg, err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// holdsFile reports whether process pid has path open (Linux: /proc).
func holdsFile(tb testing.TB, pid int, path string) bool {
	tb.Helper()
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		tb.Fatalf("reading /proc (webhookd's managed redis-server is Linux-only): %v", err)
	}
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name()); err == nil && l == path {
			return true
		}
	}
	return false
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// A started server answers on its socket with AOF on, holds both locks,
// and Stop ends it and releases them.
func TestStartStop(t *testing.T) {
	dir := shortDir(t)
	s := start(t, Config{Dir: dir}, zerolog.Nop())
	rdb := s.client()
	defer rdb.Close()
	got, err := rdb.ConfigGet(context.Background(), "appendonly").Result()
	if err != nil || got["appendonly"] != "yes" {
		t.Errorf("CONFIG GET appendonly = %v, %v; want yes", got, err)
	}
	if h := holder(filepath.Join(dir, serverLock)); !strings.Contains(h, "redis-server pid "+strconv.Itoa(s.Pid())) {
		t.Errorf("%s says %q, want the redis-server pid %d", serverLock, h, s.Pid())
	}
	if !holdsFile(t, s.Pid(), filepath.Join(s.Dir, serverLock)) {
		t.Errorf("redis-server %d has no descriptor of %s: the lock would not outlive webhookd", s.Pid(), serverLock)
	}
	pid := s.Pid()
	s.Stop()
	if alive(pid) {
		t.Errorf("redis-server %d still runs after Stop", pid)
	}
	s2 := start(t, Config{Dir: dir}, zerolog.Nop()) // the locks were released
	s2.Stop()
}

// A second webhookd on a directory in use fails at once, naming the
// first.
func TestStartInUse(t *testing.T) {
	dir := shortDir(t)
	start(t, Config{Dir: dir}, zerolog.Nop())
	began := time.Now()
	_, err := Start(context.Background(), Config{Dir: dir, LockWait: time.Minute}, zerolog.Nop())
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("second Start = %v, want ErrInUse naming pid %d", err, os.Getpid())
	}
	if d := time.Since(began); d > 30*time.Second {
		t.Errorf("second Start took %v, want it to fail without waiting LockWait", d)
	}
}

// syncBuffer is a log sink Start and the test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// While the server lock is held (by the redis-server of a webhookd that
// died), Start waits for it, says so once, and fails after LockWait
// naming the holder; once it is released, Start goes ahead.
func TestStartWaitsForServerLock(t *testing.T) {
	dir := shortDir(t)
	f, err := openLock(dir, serverLock)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tryLock(f); err != nil {
		t.Fatal(err)
	}
	if err := writeHolder(f, "redis-server pid 424242, started by webhookd pid 1"); err != nil {
		t.Fatal(err)
	}
	_, err = Start(context.Background(), Config{Dir: dir, LockWait: 100 * time.Millisecond}, zerolog.Nop())
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "redis-server pid 424242") {
		t.Fatalf("Start on a held server lock = %v, want ErrInUse naming redis-server pid 424242", err)
	}

	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		s, err := Start(context.Background(), Config{Dir: dir, LockWait: time.Minute}, zerolog.New(&logs))
		if err == nil {
			t.Cleanup(s.Stop)
		}
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "waiting for the redis-server of an earlier webhookd") {
		select {
		case err := <-done:
			t.Fatalf("Start returned %v while the server lock was held", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Start did not say it waits for the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.Close() // the earlier redis-server exits
	if err := <-done; err != nil {
		t.Fatalf("Start after the lock was released = %v", err)
	}
}

func TestStartNotInstalled(t *testing.T) {
	_, err := Start(context.Background(), Config{Dir: shortDir(t), Bin: "no-such-redis-server"}, zerolog.Nop())
	if !errors.Is(err, ErrNotInstalled) {
		t.Errorf("Start with a missing binary = %v, want ErrNotInstalled", err)
	}
}
