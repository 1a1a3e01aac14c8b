// Package redisproc runs and supervises the redis-server that webhookd
// starts when no --redis-url is given. It listens only on a unix socket
// (--port 0), keeps an append-only file (fsync every second, tech-notes
// §4.4) and never evicts, because it is the only store of webhook
// configuration. It dies with webhookd (a parent-death signal) and never
// shares its directory with a second redis-server (lock files, see
// lock.go).
package redisproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	// startTimeout bounds the wait for PING. Redis answers LOADING while
	// it replays its AOF, so a large file needs a generous bound.
	startTimeout = 60 * time.Second
	// stopTimeout is how long redis-server gets to fsync its AOF and exit
	// after SIGTERM before it is killed.
	stopTimeout = 10 * time.Second
	// DefaultLockWait is Config.LockWait's default: an orphaned
	// redis-server gets SIGTERM when webhookd dies and, like one webhookd
	// stops itself, up to stopTimeout to exit; 5 s more covers a loaded
	// machine.
	DefaultLockWait = stopTimeout + 5*time.Second
)

// Errors of Start that the caller may translate.
var (
	// ErrNotInstalled is returned when there is no redis-server to run.
	ErrNotInstalled = errors.New("redisproc: redis-server is not installed")
	// ErrDir is returned when Config.Dir cannot be created or used.
	ErrDir = errors.New("redisproc: data directory")
	// ErrInUse is returned when another webhookd, or the redis-server of
	// one that died, still uses Config.Dir.
	ErrInUse = errors.New("redisproc: data directory in use")
)

// Config is the managed redis-server's configuration.
type Config struct {
	Dir      string        // directory of the AOF, log, socket and lock files, created if missing. Required
	Bin      string        // redis-server binary; "": redis-server from $PATH
	LockWait time.Duration // how long Start waits for the redis-server of an earlier webhookd to exit; 0: DefaultLockWait
}

// Server is a running managed redis-server.
type Server struct {
	Socket  string // unix socket path
	Dir     string // working directory: AOF, log and lock files
	LogFile string
	// SocketNote explains a socket outside Dir (the path was too long).
	SocketNote string

	cmd      *exec.Cmd
	output   bytes.Buffer // stdout+stderr: errors before the log file opens
	done     chan struct{}
	waitErr  error // valid once done is closed
	stopping atomic.Bool
	tmpDir   string     // socket directory to remove on Stop, if any
	locks    []*os.File // released on Stop, after redis-server exited
	log      zerolog.Logger
}

// Start starts redis-server with its files in cfg.Dir and waits until it
// answers PING. The caller must call Stop; Watch reports the process
// dying early.
func Start(ctx context.Context, cfg Config, log zerolog.Logger) (*Server, error) {
	bin := cfg.Bin
	if bin == "" {
		bin = "redis-server"
	}
	bin, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotInstalled, err)
	}
	if cfg.LockWait == 0 {
		cfg.LockWait = DefaultLockWait
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDir, err)
	}
	s := &Server{Dir: dir, LogFile: filepath.Join(dir, "redis.log"), done: make(chan struct{}), log: log}
	if err := s.lock(cfg.LockWait); err != nil {
		return nil, err
	}
	if err := s.pickSocket(); err != nil {
		s.release()
		return nil, err
	}
	if err := s.checkNotRunning(ctx); err != nil {
		s.release()
		return nil, err
	}
	if err := s.start(bin); err != nil {
		s.release()
		return nil, fmt.Errorf("managed redis-server: %w", err)
	}
	_ = writeHolder(s.locks[1], fmt.Sprintf("redis-server pid %d, started by webhookd pid %d", s.Pid(), os.Getpid()))
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	log.Info().Int("pid", s.Pid()).Str("socket", s.Socket).Str("dir", dir).Msg("managed redis-server started")
	return s, nil
}

// lock takes both lock files of Dir (see lock.go).
func (s *Server) lock(wait time.Duration) error {
	owner, err := lockOwner(s.Dir)
	if err != nil {
		return err
	}
	server, err := lockServer(s.Dir, wait, func(holder string) {
		s.log.Warn().Str("dir", s.Dir).Str("holder", holder).
			Msg("managed redis-server: waiting for the redis-server of an earlier webhookd to exit")
	})
	if err != nil {
		owner.Close()
		return err
	}
	s.locks = []*os.File{owner, server}
	return nil
}

// start starts the process. Pdeathsig (procattr_linux.go) is sent when
// the OS thread that forked the child exits, not the process
// (golang.org/issue/27505), and the Go runtime ends a thread whenever a
// goroutine exits locked to it, which any library may do. So the child
// is started and waited for by one goroutine locked to its thread: that
// thread runs nothing else, and lives, until the child has exited.
func (s *Server) start(bin string) error {
	// No CommandContext: Stop ends it with SIGTERM so it fsyncs its AOF;
	// a cancelled context would SIGKILL it.
	s.cmd = exec.Command(bin, //nolint:noctx // see above
		"--port", "0",
		"--unixsocket", s.Socket, "--unixsocketperm", "700",
		"--dir", s.Dir,
		"--daemonize", "no",
		"--appendonly", "yes", "--appendfsync", "everysec",
		"--save", "", // the AOF is the durability; no RDB snapshots
		"--maxmemory-policy", "noeviction",
		"--logfile", s.LogFile,
	)
	s.cmd.Stdout, s.cmd.Stderr = &s.output, &s.output
	s.cmd.SysProcAttr = childProcAttr()
	s.cmd.ExtraFiles = []*os.File{s.locks[1]} // the child holds serverLock too
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := s.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	return <-started
}

// Pid is the process id of redis-server.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// pickSocket puts the socket in Dir, or in a short temporary directory
// when that path would exceed the unix socket limit.
func (s *Server) pickSocket() error {
	s.Socket = filepath.Join(s.Dir, "redis.sock")
	if len(s.Socket) <= maxSocketPath {
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
	s.tmpDir = tmp
	long := s.Socket
	s.Socket = filepath.Join(tmp, "redis.sock")
	s.SocketNote = fmt.Sprintf("socket path %s is longer than %d bytes; using %s instead", long, maxSocketPath, s.Socket)
	s.log.Warn().Str("socket", s.Socket).Msg("managed redis-server: " + s.SocketNote)
	return nil
}

// checkNotRunning refuses to start a second redis-server on a socket that
// already answers: redis-server would unlink the live socket. With the
// locks held, only a redis-server started by hand can answer here.
func (s *Server) checkNotRunning(ctx context.Context) error {
	if _, err := os.Stat(s.Socket); err != nil {
		return nil
	}
	rdb := s.client()
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if rdb.Ping(pctx).Err() == nil {
		return fmt.Errorf("%w: a redis-server already answers on %s", ErrInUse, s.Socket)
	}
	return nil
}

// waitReady polls PING until redis-server answers, exits or times out.
func (s *Server) waitReady(ctx context.Context) error {
	rdb := s.client()
	defer rdb.Close()
	deadline := time.NewTimer(startTimeout)
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
		case <-s.done:
			return fmt.Errorf("managed redis-server exited during start-up (%s): %s", exitDesc(s.waitErr), s.lastWords())
		case <-deadline.C:
			return fmt.Errorf("managed redis-server: no PING answer on %s after %s: %w", s.Socket, startTimeout, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// client returns a go-redis client for the socket.
func (s *Server) client() *redis.Client {
	return redis.NewClient(&redis.Options{Network: "unix", Addr: s.Socket, MaxRetries: -1})
}

// URL is the redis URL of the managed server.
func (s *Server) URL() string { return "unix://" + s.Socket }

// Watch blocks until ctx is done (nil) or redis-server exits on its own
// (an error: webhookd must not limp along without its store). It does
// not stop redis-server when ctx is done: webhookd stops it with Stop,
// last, after the dispatcher has drained.
func (s *Server) Watch(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-s.done:
		if s.stopping.Load() {
			return nil
		}
		s.log.Error().Str("reason", fmt.Sprint(s.waitErr)).Str("log_tail", s.lastWords()).
			Msg("managed redis-server exited unexpectedly")
		return fmt.Errorf("managed redis-server exited unexpectedly (%s); see %s", exitDesc(s.waitErr), s.LogFile)
	}
}

// Stop asks redis-server to exit (SIGTERM: it fsyncs the AOF first),
// kills it after stopTimeout, waits for it and releases the data
// directory. It is safe to call more than once and after the process
// died.
func (s *Server) Stop() {
	defer s.release()
	s.stopping.Store(true)
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		s.log.Info().Msg("managed redis-server stopped")
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.log.Warn().Dur("duration_ms", stopTimeout).Msg("managed redis-server killed: it did not exit after SIGTERM")
	}
}

// release removes the temporary socket directory and unlocks Dir. Only
// call it once redis-server has exited (or was never started).
func (s *Server) release() {
	if s.tmpDir != "" {
		_ = os.RemoveAll(s.tmpDir)
	}
	for _, f := range s.locks {
		_ = f.Close()
	}
	s.locks = nil
}

// lastWords returns what redis-server said before exiting: its own
// output (argument errors) and the end of its log file. Call it only
// after done is closed.
func (s *Server) lastWords() string {
	out := strings.TrimSpace(s.output.String())
	if b, err := os.ReadFile(s.LogFile); err == nil {
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
