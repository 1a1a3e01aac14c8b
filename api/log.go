package api

import (
	"context"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// statusWriter records the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLog writes one line per request: method, path, status, duration
// and the account once authenticated. Never headers, query or body: the
// Authorization header and secret_key must not reach a log. Health checks
// log at debug level so that probes do not flood the log.
func (s *server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)))
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		level := zerolog.InfoLevel
		if r.URL.Path == "/healthz" {
			level = zerolog.DebugLevel
		}
		ev := s.log.WithLevel(level).Str("method", r.Method).Str("path", r.URL.Path).
			Int("status", sw.status).Dur("duration_ms", time.Since(start))
		if info.account != "" {
			ev = ev.Str("account_id", info.account)
		}
		ev.Msg("request")
	})
}
