// Package harness starts private, real servers for tests: an in-process
// nats-server with JetStream and a redis-server child listening only on a
// unix socket. Tests never touch the developer's shared NATS or Redis.
package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// NATS starts an in-process nats-server with JetStream on a random
// loopback port, with its store in a temporary directory. It is shut down
// when the test ends.
func NATS(tb testing.TB) *server.Server {
	tb.Helper()
	return NATSWithDir(tb, tb.TempDir())
}

// NATSWithDir is NATS with the JetStream store in dir, so a test can stop
// a server and start another one on the same store. Port -1 picks a free
// port; pass opts to override.
func NATSWithDir(tb testing.TB, dir string, opts ...func(*server.Options)) *server.Server {
	tb.Helper()
	o := &server.Options{
		ServerName:         "webhookd-test",
		Host:               "127.0.0.1",
		Port:               server.RANDOM_PORT,
		JetStream:          true,
		StoreDir:           dir,
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  4 << 30,
		NoSigs:             true,
		NoLog:              true,
	}
	for _, f := range opts {
		f(o)
	}
	s, err := server.NewServer(o)
	if err != nil {
		tb.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		tb.Fatal("nats-server: not ready after 10s")
	}
	if !s.JetStreamEnabled() {
		s.Shutdown()
		tb.Fatal("nats-server: JetStream did not start")
	}
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect returns a client connection to s, closed when the test ends.
func Connect(tb testing.TB, s *server.Server) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		tb.Fatalf("nats connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// Redis is a private redis-server child process on a unix socket.
type Redis struct {
	// Socket is the unix socket path; URL is the same as a redis URL.
	Socket string
	URL    string
	Dir    string
	cmd    *exec.Cmd
	done   chan struct{}
	args   []string
	bin    string
}

// StartRedis starts redis-server with no TCP listener (--port 0), its
// files in a short temporary directory (unix socket paths are limited to
// 108 bytes). It fails the test when redis-server is not installed: CI
// installs it, and a skipped test is not a passing one. extra are added
// redis-server arguments, e.g. "--appendonly", "yes".
func StartRedis(tb testing.TB, extra ...string) *Redis {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redis-server is not installed (apt-get install -y redis-server): %v", err)
	}
	dir, err := os.MkdirTemp("", "rds")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "redis.sock")
	r := &Redis{Socket: sock, URL: "unix://" + sock, Dir: dir, bin: bin}
	r.args = append([]string{"--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "warning"}, extra...)
	r.Start(tb)
	tb.Cleanup(r.Stop)
	return r
}

// Start (re)starts the server with the same arguments and waits for PING.
func (r *Redis) Start(tb testing.TB) {
	tb.Helper()
	r.StartIn(tb, r.Dir)
}

// StartIn (re)starts the server on the same socket with its data files
// in dir instead: an empty dir is a Redis that came back without its
// data, r.Dir again its original data.
func (r *Redis) StartIn(tb testing.TB, dir string) {
	tb.Helper()
	args := append([]string(nil), r.args...)
	for i := range args[:len(args)-1] {
		if args[i] == "--dir" {
			args[i+1] = dir
		}
	}
	cmd := exec.Command(r.bin, args...)
	if err := cmd.Start(); err != nil {
		tb.Fatalf("redis-server: %v", err)
	}
	r.cmd = cmd
	r.done = make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(r.done)
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: r.Socket, MaxRetries: -1})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if rdb.Ping(ctx).Err() == nil {
			return
		}
		select {
		case <-r.done:
			tb.Fatal("redis-server exited during start-up")
		case <-time.After(10 * time.Millisecond):
		}
	}
	tb.Fatal("redis-server: no PING answer after 10s")
}

// Stop kills the server and waits for it to exit. It is safe to call twice.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// Client returns a go-redis client for the server, closed when the test ends.
func (r *Redis) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: r.Socket})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// RedisNow is Redis's clock (TIME), to the microsecond.
func RedisNow(tb testing.TB, rdb *redis.Client) time.Time {
	tb.Helper()
	now, err := rdb.Time(context.Background()).Result()
	if err != nil {
		tb.Fatalf("redis TIME: %v", err)
	}
	return now
}
