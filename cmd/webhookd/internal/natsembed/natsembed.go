// Package natsembed runs a nats-server with JetStream inside webhookd
// when no --nats-url is given: one process for local development and
// single-node deployments.
package natsembed

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// startTimeout bounds the embedded server's start-up. JetStream
// recovers its store inside Start, so a large store takes longer; 30 s
// covers gigabytes on an ordinary disk.
const startTimeout = 30 * time.Second

// SettingError is a start failure caused by one field of Config, so the
// caller can name the setting at fault.
type SettingError struct {
	Field string // "Listen" or "StoreDir"
	Err   error
}

func (e *SettingError) Error() string { return "natsembed: " + e.Field + ": " + e.Err.Error() }

func (e *SettingError) Unwrap() error { return e.Err }

// Config is the embedded server's configuration.
type Config struct {
	Listen     string // client address, host:port; port 0 picks a free one. Required
	StoreDir   string // JetStream store directory, created if missing. Required
	SyncAlways bool   // fsync every write (webhookd's default: on, see --nats-sync-always)
}

// Server is a running embedded nats-server.
type Server struct {
	srv *server.Server
	log zerolog.Logger
}

// Start starts nats-server with JetStream as cfg says. It returns once
// the server accepts connections, or with the server's own reason when it
// cannot start (a *SettingError when one setting is at
// fault, a *SettingError). The caller must call Shutdown.
func Start(cfg Config, log zerolog.Logger) (*Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, &SettingError{Field: "Listen", Err: err}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, &SettingError{Field: "Listen", Err: err}
	}
	if port == 0 {
		port = server.RANDOM_PORT // 0 means 4222 to nats-server
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		return nil, &SettingError{Field: "StoreDir", Err: err}
	}
	opts := &server.Options{
		ServerName: "webhookd",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		// Single node: fsync every write unless told otherwise, or a power
		// loss drops up to 2 min of acknowledged events (tech-notes §1.2).
		SyncAlways: cfg.SyncAlways,
		// webhookd handles the signals and shuts the server down last.
		NoSigs: true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	// Without a logger, a JetStream start failure is silent and only
	// shows as a readiness timeout (tech-notes §2). The adapter also
	// keeps the first fatal message so we can fail with it at once.
	logger := &natsLogger{log: log.With().Str("component", "nats").Logger()}
	srv.SetLoggerV2(logger, false, false, false)
	go srv.Start()

	deadline := time.Now().Add(startTimeout)
	for !srv.ReadyForConnections(50 * time.Millisecond) {
		if msg := logger.fatal(); msg != "" {
			srv.Shutdown()
			return nil, startError(cfg.StoreDir, msg)
		}
		if time.Now().After(deadline) {
			srv.Shutdown()
			return nil, fmt.Errorf("embedded nats-server (listen %q, store %s): not ready after %s", cfg.Listen, cfg.StoreDir, startTimeout)
		}
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats-server (store %s): JetStream did not start", cfg.StoreDir)
	}
	logger.markStarted()
	return &Server{srv: srv, log: log}, nil
}

// startError says whether a start failure is the listener's or the
// store's.
func startError(storeDir, msg string) error {
	err := errors.New("embedded nats-server: " + msg)
	if strings.HasPrefix(msg, "Error listening on port") {
		return &SettingError{Field: "Listen", Err: err}
	}
	return &SettingError{Field: "StoreDir", Err: fmt.Errorf("store %s: %w", storeDir, err)}
}

// ClientURL is the URL producers and webhookd itself connect to. An
// unspecified listen host (0.0.0.0, ::) is reported as loopback, which is
// what a local producer can dial.
func (e *Server) ClientURL() string {
	u := e.srv.ClientURL()
	if a, ok := e.srv.Addr().(*net.TCPAddr); ok && a.IP.IsUnspecified() {
		return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(a.Port))
	}
	return u
}

// ConnectOption connects a client in-process (a net.Pipe, no TCP), so
// webhookd's own connection does not depend on the listener.
func (e *Server) ConnectOption() nats.Option { return nats.InProcessServer(e.srv) }

// Shutdown stops the server and waits until it has flushed its store.
func (e *Server) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.log.Info().Msg("embedded nats-server stopped")
}

// natsLogger adapts zerolog to server.Logger. Notices (the start-up
// banner, a dozen lines) go to debug so the default log stays readable.
type natsLogger struct {
	log zerolog.Logger

	mu       sync.Mutex
	started  bool   // after start-up, fatal messages are logged
	firstErr string // the first fatal message during start-up
}

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.log.Debug().Msgf(format, v...) }
func (l *natsLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }

// Fatalf never exits (the server's own logger calls os.Exit). During
// start-up it records the message, which Start turns into
// its error; afterwards it logs it.
func (l *natsLogger) Fatalf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		l.log.Error().Msgf(format, v...)
		return
	}
	if l.firstErr == "" {
		l.firstErr = fmt.Sprintf(format, v...)
	}
}

func (l *natsLogger) markStarted() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.started = true
}

func (l *natsLogger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstErr
}
