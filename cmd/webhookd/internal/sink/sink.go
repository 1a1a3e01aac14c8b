// Package sink is the receiving endpoint behind `webhookd sink`, for local
// development, tests and benchmarks. Every POST (any path but /stats) is
// a delivery: its Klaviyo-Signature is verified, its Klaviyo-Webhook-Id
// compared with meta.klaviyo_webhook_id, and its events counted and
// deduplicated. GET /stats returns the counts as JSON; POST /stats/reset
// or DELETE /stats returns them and starts over.
package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

const (
	// shutdownTimeout bounds how long requests in progress get to finish
	// once the sink is told to stop; Delay and injected timeouts are cut
	// short at that moment, so only body reads remain.
	shutdownTimeout = 10 * time.Second
	// failTimeout is how long FailMode timeout holds a request: twice
	// webhookd's default --delivery-timeout, so the sender gives up first.
	failTimeout = 10 * time.Second
	// maxPooledBody is the largest body buffer kept for reuse. A 1,000
	// event batch of 1 KB events is about 1 MB; larger ones are rare.
	maxPooledBody = 8 << 20
	// maxRememberedWebhooks bounds the webhook id → secret memo. Only
	// requests whose signature verified add to it.
	maxRememberedWebhooks = 100_000
	// DefaultMaxBody is Config.MaxBody's default: eight times webhookd's
	// default body cap, so the sink never refuses what webhookd sends.
	DefaultMaxBody = 32 << 20
)

// FailModes are the values of Config.FailMode; "mixed" picks one of the
// first three at random per request.
var FailModes = []string{"5xx", "timeout", "reset", "mixed"}

// Config is the sink's behaviour. It needs Secrets or NoVerify; every
// other field has a usable zero value.
type Config struct {
	Secrets  []string      // candidate secrets; any that verifies accepts. Required unless NoVerify
	NoVerify bool          // accept requests without checking signatures
	Status   int           // status of accepted requests; 0: 200. Other than 200, 201 or 202 counts them rejected
	Delay    time.Duration // hold each delivery this long before answering; 0: none
	FailRate float64       // fraction (0 to 1) of deliveries to fail on purpose; 0: none
	FailMode string        // how to fail: one of FailModes; "": mixed
	MaxBody  int64         // largest body accepted, larger ones get 413; 0: DefaultMaxBody
	Quiet    bool          // log nothing per request (by default one line per verified batch, and refused requests at most one line a second)
}

// Sink is the receiving endpoint's state.
type Sink struct {
	cfg      Config
	stats    *stats
	secrets  *secretSet // nil with NoVerify
	log      zerolog.Logger
	logLimit logLimiter
	bodies   sync.Pool     // *[]byte, request bodies
	scans    sync.Pool     // *deliveryScan
	stopping chan struct{} // closed when shutdown starts
}

// New returns a sink configured by cfg that logs refused requests to log.
// Its counters start now.
func New(cfg Config, log zerolog.Logger) *Sink {
	if cfg.Status == 0 {
		cfg.Status = http.StatusOK
	}
	if cfg.FailMode == "" {
		cfg.FailMode = "mixed"
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	s := &Sink{cfg: cfg, stats: newStats(time.Now()), log: log, stopping: make(chan struct{})}
	if !cfg.NoVerify {
		s.secrets = newSecretSet(cfg.Secrets)
	}
	s.bodies.New = func() any { return new([]byte) }
	s.scans.New = func() any { return new(deliveryScan) }
	return s
}

// Run serves ln until ctx is done, then stops accepting and lets requests
// in progress finish (at most shutdownTimeout). It returns nil after a
// clean shutdown.
func (s *Sink) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          stdlog.New(s.log, "", 0),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("sink: %w", err)
	case <-ctx.Done():
	}
	close(s.stopping)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		return fmt.Errorf("sink: shutdown: %w", err)
	}
	return nil
}

// Summary returns the counts since the start or the last reset.
func (s *Sink) Summary() Summary { return s.stats.summary(time.Now()) }

// Handler lists every endpoint. POST /stats is refused rather than taken
// for a delivery, so a mistyped reset does not count as a bad signature.
func (s *Sink) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", s.handleStats)
	mux.HandleFunc("DELETE /stats", s.handleReset)
	mux.HandleFunc("POST /stats/reset", s.handleReset)
	mux.HandleFunc("POST /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", "GET, HEAD, DELETE")
		http.Error(w, "POST /stats/reset or DELETE /stats resets the counters", http.StatusMethodNotAllowed)
	})
	mux.HandleFunc("POST /", s.handleDelivery)
	return mux
}

func (s *Sink) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.stats.summary(time.Now()))
}

// handleReset answers with the counts it clears.
func (s *Sink) handleReset(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.stats.reset(time.Now()))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // a failed write means the client went away
}
