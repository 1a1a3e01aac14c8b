package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/signer"
)

const (
	// sinkShutdownTimeout bounds how long requests in progress get to
	// finish once the sink is told to stop; --delay and injected
	// timeouts are cut short at that moment, so only body reads remain.
	sinkShutdownTimeout = 10 * time.Second
	// failTimeout is how long --fail-mode timeout holds a request: twice
	// webhookd's default --delivery-timeout, so the sender gives up first.
	failTimeout = 10 * time.Second
	// maxPooledBody is the largest body buffer kept for reuse. A 1,000
	// event batch of 1 KB events is about 1 MB; larger ones are rare.
	maxPooledBody = 8 << 20
	// maxRememberedWebhooks bounds the webhook id → secret memo. Only
	// requests whose signature verified add to it.
	maxRememberedWebhooks = 100_000
)

// failModes are the --fail-mode values; mixed picks one of the first
// three at random per request.
var failModes = []string{"5xx", "timeout", "reset", "mixed"}

// sinkConfig is the configuration of `webhookd sink`.
type sinkConfig struct {
	Addr     string
	Secrets  []string // candidate secrets; any that verifies accepts
	NoVerify bool
	Status   int
	Delay    time.Duration
	FailRate float64
	FailMode string
	MaxBody  byteSize
	Quiet    bool
}

func newSinkFlags(c *sinkConfig, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, "usage: webhookd sink --secret SECRET [flags]\n\n"+
			"A receiving endpoint for development, tests and benchmarks. Every POST (any path\n"+
			"but /stats) is a delivery: its Klaviyo-Signature is verified, its Klaviyo-Webhook-Id\n"+
			"compared with meta.klaviyo_webhook_id, and its events counted and deduplicated.\n"+
			"GET /stats returns the counts as JSON; POST /stats/reset or DELETE /stats returns\n"+
			"them and starts over. On SIGINT/SIGTERM it prints a summary line and exits.\n\n")
		fs.PrintDefaults()
	}
	c.MaxBody = 32 << 20
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:9000", "listen `address`; port 0 picks a free one (printed on start)")
	fs.Func("secret", "webhook `secret` to verify signatures with; repeat it, or give a comma list, for several webhooks (any that verifies accepts)", func(v string) error {
		if v == "" {
			return errors.New("empty secret")
		}
		c.Secrets = appendSecret(c.Secrets, v)
		return nil
	})
	fs.BoolVar(&c.NoVerify, "no-verify", false, "accept requests without checking signatures")
	fs.IntVar(&c.Status, "status", http.StatusOK, "HTTP `status` to answer accepted requests with; other than 200, 201 or 202 makes them rejected")
	fs.DurationVar(&c.Delay, "delay", 0, "hold each delivery this long before answering")
	fs.Float64Var(&c.FailRate, "fail-rate", 0, "`fraction` (0 to 1) of deliveries to fail on purpose")
	fs.StringVar(&c.FailMode, "fail-mode", "mixed", "how to fail: 5xx (answer 503), timeout (hold 10s), reset (TCP RST) or mixed")
	fs.Var(&c.MaxBody, "max-body", "largest body `size` accepted, e.g. 32MiB; larger ones get 413")
	fs.BoolVar(&c.Quiet, "quiet", false, "log nothing per request (by default only rejected requests, at most one line a second)")
	return fs
}

// appendSecret adds v and, if it is a comma list, each of its elements
// to secrets: a secret may itself hold commas, so both readings are
// candidates (one more HMAC for the first request of each webhook).
func appendSecret(secrets []string, v string) []string {
	for _, s := range append([]string{v}, strings.Split(v, ",")...) {
		if s != "" && !slices.Contains(secrets, s) {
			secrets = append(secrets, s)
		}
	}
	return secrets
}

func (c *sinkConfig) validate() error {
	var errs []error
	bad := func(name, value, format string, a ...any) {
		errs = append(errs, &flagError{Flag: name, Value: value, Err: fmt.Errorf(format, a...)})
	}
	if err := checkHostPort(c.Addr); err != nil {
		bad("addr", c.Addr, "%v", err)
	}
	switch {
	case len(c.Secrets) == 0 && !c.NoVerify:
		bad("secret", "", "required (or --no-verify to accept any signature)")
	case len(c.Secrets) > 0 && c.NoVerify:
		bad("no-verify", "true", "--secret and --no-verify are exclusive")
	}
	if c.Status < 200 || c.Status > 599 {
		bad("status", strconv.Itoa(c.Status), "must be an HTTP status from 200 to 599")
	}
	if c.Delay < 0 {
		bad("delay", c.Delay.String(), "must not be negative")
	}
	if !(c.FailRate >= 0 && c.FailRate <= 1) {
		bad("fail-rate", fmt.Sprint(c.FailRate), "must be between 0 and 1")
	}
	if !slices.Contains(failModes, c.FailMode) {
		bad("fail-mode", c.FailMode, "want one of %s", strings.Join(failModes, ", "))
	}
	if c.MaxBody < 1<<10 || c.MaxBody > 1<<30 {
		bad("max-body", fmt.Sprint(int64(c.MaxBody)), "must be between 1KiB and 1GiB")
	}
	return errors.Join(errs...)
}

// runSink is `webhookd sink`. It prints "sink listening on http://ADDR"
// as the first line of stdout once the port is bound (scripts pass
// --addr 127.0.0.1:0 and read it), serves until ctx is done, then stops
// accepting, lets requests in progress finish (at most
// sinkShutdownTimeout) and prints the summary line.
func runSink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg sinkConfig
	fs := newSinkFlags(&cfg, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sink: unexpected argument %q", fs.Arg(0))
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	// Plain console lines: the sink is watched in a terminal or its
	// output kept in a file by a benchmark, where colour codes are noise.
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly, NoColor: true}).With().Timestamp().Logger()
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return &flagError{Flag: "addr", Value: cfg.Addr, Err: err}
	}
	s := newSink(cfg, log, time.Now())
	srv := &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          newStdLogger(log),
	}
	_, _ = fmt.Fprintf(stdout, "sink listening on http://%s\n", ln.Addr())
	if f, ok := stdout.(interface{ Flush() error }); ok {
		_ = f.Flush()
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("sink: %w", err)
	case <-ctx.Done():
	}
	close(s.stopping)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sinkShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	_, _ = fmt.Fprintln(stdout, s.stats.summary(time.Now()).line())
	if err != nil {
		return fmt.Errorf("sink: shutdown: %w", err)
	}
	return nil
}

// sink is the receiving endpoint's state.
type sink struct {
	cfg      sinkConfig
	stats    *sinkStats
	secrets  *secretSet // nil with --no-verify
	log      zerolog.Logger
	logLimit logLimiter
	bodies   sync.Pool     // *[]byte, request bodies
	scans    sync.Pool     // *deliveryScan
	stopping chan struct{} // closed when shutdown starts
}

func newSink(cfg sinkConfig, log zerolog.Logger, now time.Time) *sink {
	s := &sink{cfg: cfg, stats: newSinkStats(now), log: log, stopping: make(chan struct{})}
	if !cfg.NoVerify {
		s.secrets = newSecretSet(cfg.Secrets)
	}
	s.bodies.New = func() any { return new([]byte) }
	s.scans.New = func() any { return new(deliveryScan) }
	return s
}

// routes lists every endpoint. POST /stats is refused rather than taken
// for a delivery, so a mistyped reset does not count as a bad signature.
func (s *sink) routes() http.Handler {
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

func (s *sink) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeSinkJSON(w, s.stats.summary(time.Now()))
}

// handleReset answers with the counts it clears.
func (s *sink) handleReset(w http.ResponseWriter, _ *http.Request) {
	writeSinkJSON(w, s.stats.reset(time.Now()))
}

func writeSinkJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // a failed write means the client went away
}

// handleDelivery checks one delivery in order of cost: injected failure,
// body size, signature (a fixed cost per byte), then a single scan of the
// body that validates it as JSON and extracts only the envelope fields,
// the dedupe keys and published_ns.
func (s *sink) handleDelivery(w http.ResponseWriter, r *http.Request) {
	s.stats.enter()
	defer s.stats.leave()
	if s.cfg.FailRate > 0 && rand.Float64() < s.cfg.FailRate {
		s.stats.count(&s.stats.injectedFailures)
		s.failOnPurpose(w, r)
		return
	}

	buf := s.bodies.Get().(*[]byte)
	d := s.scans.Get().(*deliveryScan)
	defer s.putScan(d)
	webhookID, arrived, ok := s.check(w, r, buf, d)
	s.putBody(buf) // before --delay: held requests keep only their keys
	if !ok {
		return
	}
	if s.cfg.Delay > 0 && !s.hold(r, s.cfg.Delay) {
		return // the sender gave up and will retry: not delivered
	}
	if dispatcher.Successful(s.cfg.Status) { // webhookd's own rule
		s.stats.accept(webhookID, d, arrived)
	} else {
		s.stats.count(&s.stats.rejected)
	}
	w.WriteHeader(s.cfg.Status)
}

// check reads the body into buf, verifies its signature and scans it
// into d. A request it refuses it answers and counts itself, and returns
// false. arrived is when the body had been read.
func (s *sink) check(w http.ResponseWriter, r *http.Request, buf *[]byte, d *deliveryScan) (webhookID string, arrived time.Time, ok bool) {
	webhookID = r.Header.Get(signer.HeaderWebhookID)
	var err error
	*buf, err = readBody(w, r, *buf, int64(s.cfg.MaxBody))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			s.refuse(w, &s.stats.malformed, http.StatusRequestEntityTooLarge, webhookID, "body over --max-body")
		}
		return "", arrived, false // otherwise the client went away mid-body: nobody to answer
	}
	body, arrived := *buf, time.Now()
	if s.secrets != nil && !s.secrets.verify(webhookID, r.Header.Get(signer.HeaderTimestamp), r.Header.Get(signer.HeaderSignature), body) {
		s.refuse(w, &s.stats.badSignatures, http.StatusUnauthorized, webhookID, "signature does not verify")
		return "", arrived, false
	}
	wh := s.stats.webhookHash(webhookID)
	if err := scanDelivery(body, d, func(id []byte) uint64 { return s.stats.dedupeKey(wh, id) }); err != nil {
		s.refuse(w, &s.stats.malformed, http.StatusBadRequest, webhookID, "malformed body: "+err.Error())
		return "", arrived, false
	}
	if webhookID == "" || string(d.webhookID) != webhookID {
		s.refuse(w, &s.stats.mismatches, http.StatusBadRequest, webhookID, "Klaviyo-Webhook-Id header differs from meta.klaviyo_webhook_id")
		return "", arrived, false
	}
	d.webhookID = nil // it points into body, which goes back to the pool
	return webhookID, arrived, true
}

// putBody and putScan return request memory to the pools, except
// outsized buffers, which are left to the garbage collector rather than
// pinned.
func (s *sink) putBody(buf *[]byte) {
	if cap(*buf) <= maxPooledBody {
		s.bodies.Put(buf)
	}
}

func (s *sink) putScan(d *deliveryScan) {
	if cap(d.keys) <= 1<<16 && cap(d.published) <= 1<<16 && cap(d.topics) <= 1<<10 {
		s.scans.Put(d)
	}
}

// refuse answers a request the sink will not accept, counts it in c and
// logs why, at most one line a second (see logLimiter) and never with
// --quiet. The reason never quotes the body.
func (s *sink) refuse(w http.ResponseWriter, c *int64, status int, webhookID, why string) {
	s.stats.count(c)
	if !s.cfg.Quiet {
		if ok, suppressed := s.logLimit.allow(time.Now()); ok {
			ev := s.log.Warn().Str("webhook_id", webhookID).Int("status", status)
			if suppressed > 0 {
				ev = ev.Int("suppressed", suppressed) // lines left out since the last one
			}
			ev.Msg(why)
		}
	}
	http.Error(w, why, status)
}

// hold waits d, or until the client goes (false) or the sink stops.
func (s *sink) hold(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stopping:
		return true
	case <-r.Context().Done():
		return false
	}
}

// failOnPurpose fails a delivery the way --fail-mode says.
func (s *sink) failOnPurpose(w http.ResponseWriter, r *http.Request) {
	mode := s.cfg.FailMode
	if mode == "mixed" {
		mode = failModes[rand.IntN(3)]
	}
	switch mode {
	case "reset":
		if resetConnection(w) {
			return
		}
	case "timeout":
		// Read the body first: only then does net/http watch the
		// connection and cancel r's context when the sender gives up.
		_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxBody)))
		if !s.hold(r, failTimeout) {
			return
		}
	default: // 5xx: read the body first so the connection can be reused
		_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxBody)))
	}
	http.Error(w, "failure injected by --fail-rate", http.StatusServiceUnavailable)
}

// resetConnection takes the request's connection from the server and
// closes it with SO_LINGER 0, which sends a TCP RST: the sender sees
// "connection reset by peer" rather than a response.
func resetConnection(w http.ResponseWriter) bool {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
	return true
}

// readBody reads r's body into buf, reusing its capacity, up to limit
// bytes; a longer body returns an *http.MaxBytesError.
func readBody(w http.ResponseWriter, r *http.Request, buf []byte, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return buf[:0], &http.MaxBytesError{Limit: limit}
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n >= 0 {
		buf = slices.Grow(buf[:0], int(n))[:n]
		_, err := io.ReadFull(body, buf)
		return buf, err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(len(buf), 64<<10))
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// secretSet verifies a signature against several candidate secrets. It
// remembers which secret verified each webhook id, so with 100 webhooks
// and 100 secrets a request costs one HMAC, not a hundred.
type secretSet struct {
	secrets [][]byte

	mu        sync.RWMutex
	byWebhook map[string]int // webhook id → index into secrets
}

func newSecretSet(secrets []string) *secretSet {
	ss := &secretSet{byWebhook: map[string]int{}}
	for _, s := range secrets {
		ss.secrets = append(ss.secrets, []byte(s))
	}
	return ss
}

// verify reports whether signature signs body and timestamp under any
// of the secrets.
func (ss *secretSet) verify(webhookID, timestamp, signature string, body []byte) bool {
	if timestamp == "" || signature == "" {
		return false
	}
	ss.mu.RLock()
	known, ok := ss.byWebhook[webhookID]
	ss.mu.RUnlock()
	if ok && signer.Verify(ss.secrets[known], body, timestamp, signature) == nil {
		return true
	}
	for i, secret := range ss.secrets {
		if ok && i == known {
			continue
		}
		switch err := signer.Verify(secret, body, timestamp, signature); {
		case err == nil:
			if len(ss.secrets) > 1 {
				ss.remember(webhookID, i)
			}
			return true
		case errors.Is(err, signer.ErrMalformedSignature):
			return false // no secret can match
		}
	}
	return false
}

func (ss *secretSet) remember(webhookID string, i int) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, ok := ss.byWebhook[webhookID]; ok || len(ss.byWebhook) < maxRememberedWebhooks {
		ss.byWebhook[webhookID] = i
	}
}

// logLimiter lets one log line through per second and counts the rest.
type logLimiter struct {
	mu         sync.Mutex
	next       time.Time
	suppressed int
}

// allow reports whether a line may be logged at now and, if so, how many
// were suppressed since the previous one.
func (l *logLimiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.suppressed, l.next = 0, now.Add(time.Second)
	return true, n
}
