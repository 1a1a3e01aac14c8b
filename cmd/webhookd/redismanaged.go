package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

const (
	// maxSocketPath is the longest unix socket path: sun_path holds 108
	// bytes including the terminating NUL.
	maxSocketPath = 107
	// redisStartTimeout bounds the wait for PING. Redis answers LOADING
	// while it replays its AOF, so a large file needs a generous bound.
	redisStartTimeout = 60 * time.Second
	// redisStopTimeout is how long redis-server gets to fsync its AOF and
	// exit after SIGTERM before it is killed.
	redisStopTimeout = 10 * time.Second
)

// errRedisNotInstalled says what to do when redis-server is missing.
var errRedisNotInstalled = errors.New("redis-server is not installed; it is needed when --redis-url is empty: " +
	"install it with `apt-get install -y redis-server` (or `make deps`), or pass --redis-url")

// managedRedis is a redis-server child process that webhookd starts when
// no --redis-url is given. It listens only on a unix socket (--port 0),
// keeps an append-only file (fsync every second, tech-notes §4.4) and
// never evicts, because it is the only store of webhook configuration.
type managedRedis struct {
	Socket  string // unix socket path
	Dir     string // working directory: AOF and log
	LogFile string
	// SocketNote explains a socket outside Dir (the path was too long).
	SocketNote string

	cmd      *exec.Cmd
	output   bytes.Buffer // stdout+stderr: errors before the log file opens
	done     chan struct{}
	waitErr  error // valid once done is closed
	stopping atomic.Bool
	tmpDir   string // socket directory to remove on Stop, if any
	log      zerolog.Logger
}

// startManagedRedis starts redis-server with its files in
// <dataDir>/redis and waits until it answers PING. The caller must call
// Stop; Watch reports the process dying early.
func startManagedRedis(ctx context.Context, dataDir string, log zerolog.Logger) (*managedRedis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errRedisNotInstalled
	}
	dir, err := filepath.Abs(filepath.Join(dataDir, "redis"))
	if err != nil {
		return nil, &flagError{Flag: "data-dir", Value: dataDir, Err: err}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &flagError{Flag: "data-dir", Value: dataDir, Err: err}
	}
	m := &managedRedis{Dir: dir, LogFile: filepath.Join(dir, "redis.log"), done: make(chan struct{}), log: log}
	if err := m.pickSocket(); err != nil {
		return nil, err
	}
	if err := m.checkNotRunning(ctx); err != nil {
		m.removeTmp()
		return nil, err
	}

	// No CommandContext: Stop ends it with SIGTERM so it fsyncs its AOF;
	// a cancelled context would SIGKILL it.
	m.cmd = exec.Command(bin, //nolint:noctx // see above
		"--port", "0",
		"--unixsocket", m.Socket, "--unixsocketperm", "700",
		"--dir", dir,
		"--daemonize", "no",
		"--appendonly", "yes", "--appendfsync", "everysec",
		"--save", "", // the AOF is the durability; no RDB snapshots
		"--maxmemory-policy", "noeviction",
		"--logfile", m.LogFile,
	)
	m.cmd.Stdout, m.cmd.Stderr = &m.output, &m.output
	m.cmd.SysProcAttr = childProcAttr()
	if err := m.cmd.Start(); err != nil {
		m.removeTmp()
		return nil, fmt.Errorf("managed redis-server: %w", err)
	}
	go func() {
		m.waitErr = m.cmd.Wait()
		close(m.done)
	}()
	if err := m.waitReady(ctx); err != nil {
		m.Stop()
		return nil, err
	}
	log.Info().Int("pid", m.cmd.Process.Pid).Str("socket", m.Socket).Str("dir", dir).Msg("managed redis-server started")
	return m, nil
}

// pickSocket puts the socket in Dir, or in a short temporary directory
// when that path would exceed the unix socket limit.
func (m *managedRedis) pickSocket() error {
	m.Socket = filepath.Join(m.Dir, "redis.sock")
	if len(m.Socket) <= maxSocketPath {
		return nil
	}
	base := os.TempDir()
	if len(base) > 40 {
		base = "/tmp"
	}
	tmp, err := os.MkdirTemp(base, "webhookd-redis-")
	if err != nil {
		return fmt.Errorf("managed redis-server: socket directory: %w", err)
	}
	m.tmpDir = tmp
	long := m.Socket
	m.Socket = filepath.Join(tmp, "redis.sock")
	m.SocketNote = fmt.Sprintf("socket path %s is longer than %d bytes; using %s instead", long, maxSocketPath, m.Socket)
	m.log.Warn().Str("socket", m.Socket).Msg("managed redis-server: " + m.SocketNote)
	return nil
}

// checkNotRunning refuses to start a second redis-server on a socket that
// already answers: redis-server would unlink the live socket and the two
// would share one AOF directory (two webhookd on one --data-dir).
func (m *managedRedis) checkNotRunning(ctx context.Context) error {
	if _, err := os.Stat(m.Socket); err != nil {
		return nil
	}
	rdb := m.client()
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if rdb.Ping(pctx).Err() == nil {
		return fmt.Errorf("a redis-server already answers on %s: is another webhookd using this --data-dir?", m.Socket)
	}
	return nil
}

// waitReady polls PING until redis-server answers, exits or times out.
func (m *managedRedis) waitReady(ctx context.Context) error {
	rdb := m.client()
	defer rdb.Close()
	deadline := time.NewTimer(redisStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-m.done:
			return fmt.Errorf("managed redis-server exited during start-up (%s): %s", exitDesc(m.waitErr), m.lastWords())
		case <-deadline.C:
			return fmt.Errorf("managed redis-server: no PING answer on %s after %s: %w", m.Socket, redisStartTimeout, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// client returns a go-redis client for the socket.
func (m *managedRedis) client() *redis.Client {
	return redis.NewClient(&redis.Options{Network: "unix", Addr: m.Socket, MaxRetries: -1})
}

// URL is the redis URL of the managed server.
func (m *managedRedis) URL() string { return "unix://" + m.Socket }

// Watch blocks until ctx is done (nil) or redis-server exits on its own
// (an error: webhookd must not limp along without its store).
func (m *managedRedis) Watch(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-m.done:
		if m.stopping.Load() {
			return nil
		}
		m.log.Error().Str("reason", fmt.Sprint(m.waitErr)).Str("log_tail", m.lastWords()).
			Msg("managed redis-server exited unexpectedly")
		return fmt.Errorf("managed redis-server exited unexpectedly (%s); see %s", exitDesc(m.waitErr), m.LogFile)
	}
}

// Stop asks redis-server to exit (SIGTERM: it fsyncs the AOF first),
// kills it after redisStopTimeout, and waits for it. It is safe to call
// more than once and after the process died.
func (m *managedRedis) Stop() {
	defer m.removeTmp()
	m.stopping.Store(true)
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
		m.log.Info().Msg("managed redis-server stopped")
	case <-time.After(redisStopTimeout):
		_ = m.cmd.Process.Kill()
		<-m.done
		m.log.Warn().Dur("duration", redisStopTimeout).Msg("managed redis-server killed: it did not exit after SIGTERM")
	}
}

func (m *managedRedis) removeTmp() {
	if m.tmpDir != "" {
		_ = os.RemoveAll(m.tmpDir)
	}
}

// lastWords returns what redis-server said before exiting: its own
// output (argument errors) and the end of its log file. Call it only
// after done is closed.
func (m *managedRedis) lastWords() string {
	out := strings.TrimSpace(m.output.String())
	if b, err := os.ReadFile(m.LogFile); err == nil {
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 5 {
			lines = lines[len(lines)-5:]
		}
		out = strings.TrimSpace(out + "\n" + strings.Join(lines, "\n"))
	}
	if out == "" {
		return "no output"
	}
	return out
}

// exitDesc describes how a child process ended, from cmd.Wait's error.
func exitDesc(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
