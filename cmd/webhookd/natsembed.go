package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// natsStartTimeout bounds the embedded server's start-up. JetStream
// recovers its store inside Start, so a large store takes longer; 30 s
// covers gigabytes on an ordinary disk.
const natsStartTimeout = 30 * time.Second

// embeddedNATS is a nats-server with JetStream running inside webhookd
// when no --nats-url is given: one process for local development and
// single-node deployments.
type embeddedNATS struct {
	srv *server.Server
	log zerolog.Logger
}

// startEmbeddedNATS starts nats-server with JetStream, its store in
// storeDir and its client listener on listen (host:port; port 0 picks a
// free one). It returns once the server accepts connections, or with the
// server's own reason when it cannot start.
func startEmbeddedNATS(listen, storeDir string, syncAlways bool, log zerolog.Logger) (*embeddedNATS, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, &flagError{Flag: "nats-listen", Value: listen, Err: err}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, &flagError{Flag: "nats-listen", Value: listen, Err: err}
	}
	if port == 0 {
		port = server.RANDOM_PORT // 0 means 4222 to nats-server
	}
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		return nil, &flagError{Flag: "data-dir", Value: filepath.Dir(storeDir), Err: err}
	}
	opts := &server.Options{
		ServerName: "webhookd",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		// Single node: fsync every write unless told otherwise, or a power
		// loss drops up to 2 min of acknowledged events (tech-notes §1.2).
		SyncAlways: syncAlways,
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

	deadline := time.Now().Add(natsStartTimeout)
	for !srv.ReadyForConnections(50 * time.Millisecond) {
		if msg := logger.fatal(); msg != "" {
			srv.Shutdown()
			return nil, natsStartError(listen, storeDir, msg)
		}
		if time.Now().After(deadline) {
			srv.Shutdown()
			return nil, fmt.Errorf("embedded nats-server (--nats-listen %q, store %s): not ready after %s", listen, storeDir, natsStartTimeout)
		}
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats-server (store %s): JetStream did not start", storeDir)
	}
	logger.markStarted()
	return &embeddedNATS{srv: srv, log: log}, nil
}

// natsStartError names the flag behind a start failure: the listener
// (--nats-listen) or the store (--data-dir).
func natsStartError(listen, storeDir, msg string) error {
	err := errors.New("embedded nats-server: " + msg)
	if srvListenFailed(msg) {
		return &flagError{Flag: "nats-listen", Value: listen, Err: err}
	}
	return fmt.Errorf("store %s (--data-dir): %w", storeDir, err)
}

func srvListenFailed(msg string) bool {
	return strings.HasPrefix(msg, "Error listening on port")
}

// ClientURL is the URL producers and webhookd itself connect to. An
// unspecified listen host (0.0.0.0, ::) is reported as loopback, which is
// what a local producer can dial.
func (e *embeddedNATS) ClientURL() string {
	u := e.srv.ClientURL()
	if a, ok := e.srv.Addr().(*net.TCPAddr); ok && a.IP.IsUnspecified() {
		return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(a.Port))
	}
	return u
}

// ConnectOption connects a client in-process (a net.Pipe, no TCP), so
// webhookd's own connection does not depend on the listener.
func (e *embeddedNATS) ConnectOption() nats.Option { return nats.InProcessServer(e.srv) }

// Shutdown stops the server and waits until it has flushed its store.
func (e *embeddedNATS) Shutdown() {
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
// start-up it records the message, which startEmbeddedNATS turns into
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
