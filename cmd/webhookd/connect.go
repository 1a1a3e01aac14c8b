package main

import (
	"context"
	"fmt"
	"io"
	stdlog "log"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/dispatcher"
)

// connectTimeout bounds the first PING to an external Redis, so a wrong
// --redis-url fails start-up in seconds rather than hanging.
const connectTimeout = 5 * time.Second

// newLogger returns the process logger writing to w, in JSON (for log
// collectors) or a human console format, coloured only when w is a
// terminal (colour codes are noise in files and pipes). Durations are
// logged in milliseconds under keys that say so (retry_in_ms,
// duration_ms).
func newLogger(w io.Writer, level, format string) zerolog.Logger {
	lvl, err := parseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel // validated before; keep a usable default
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !isTerminal(w)}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// isTerminal reports whether w is a character device (a terminal), the
// test isatty makes, without a dependency for it.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// newStdLogger adapts log for the standard library's users (http.Server
// reports TLS handshake and accept errors through it).
func newStdLogger(log zerolog.Logger) *stdlog.Logger {
	return stdlog.New(log, "", 0)
}

// connectRedis opens a client for rawURL (redis://, rediss://, unix://)
// and checks it with PING. Errors name flagName and the URL (password
// redacted).
func connectRedis(ctx context.Context, flagName, rawURL string) (*redis.Client, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, &flagError{Flag: flagName, Value: redactURL(rawURL), Err: withoutSecrets(err, rawURL)}
	}
	// Honour context deadlines on a hung connection: the partition owner
	// and the delivery path bound every Redis call and must get their
	// time back (go-redis ignores deadlines unless told).
	opts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, &flagError{Flag: flagName, Value: redactURL(rawURL), Err: fmt.Errorf("PING: %w", withoutSecrets(err, rawURL))}
	}
	return rdb, nil
}

// connectNATS connects webhookd's client and checks that the server is
// recent enough for the dispatcher. It reconnects forever: a NATS
// restart is an outage to wait out, not a reason to exit. flagName and
// url name the source in errors; extra adds options (the in-process
// connection to the embedded server).
func connectNATS(flagName, url string, log zerolog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{
		nats.Name("webhookd"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().Err(err).Msg("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", redactURL(nc.ConnectedUrl())).Msg("nats reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Error().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("nats async error")
		}),
	}, extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, &flagError{Flag: flagName, Value: redactURL(url), Err: withoutSecrets(err, url)}
	}
	// An older server accepts the connection and the API would answer,
	// while every consumer fails: refuse to start instead.
	if err := dispatcher.CheckServerVersion(nc.ConnectedServerVersion()); err != nil {
		nc.Close()
		return nil, &flagError{Flag: flagName, Value: redactURL(url), Err: err}
	}
	return nc, nil
}

// drainNATS drains the connection (pending acks and publishes are
// flushed, subscriptions unsubscribed) and waits for it to close, at
// most timeout.
func drainNATS(nc *nats.Conn, timeout time.Duration) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(timeout):
		nc.Close()
	}
}
