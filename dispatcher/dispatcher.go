// Package dispatcher consumes events from JetStream, batches them per
// webhook, and delivers signed requests under a Redis lease semaphore,
// with backoff, the error state and the disable hand-off.
//
// Per enabled webhook there is one durable pull consumer (wh_<id>),
// shared by every replica; the server balances pull requests between
// them. Each replica runs one fetch loop per webhook that takes a request
// slot (a Redis lease, at most MaxInFlight per webhook across replicas)
// before pulling a batch, so no message waits in a client buffer while its
// AckWait runs. A failed batch is handed back with NakWithDelay: JetStream
// is both the durable queue and the retry schedule.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/webhookd/webhookd/batcher"
	"github.com/webhookd/webhookd/subscriptions"
)

// Config configures a Dispatcher. Zero fields take the defaults shown.
type Config struct {
	Stream         string        // JetStream stream name ("EVENTS")
	Subjects       []string      // stream subjects (["event:klaviyo.>"])
	StreamMaxAge   time.Duration // retention (72h, and always > DisableAfter + 24h)
	Replicas       int           // stream replicas (1; 3 in a NATS cluster)
	DeadLetter     string        // dead-letter subject prefix ("webhookd.deadletter")
	DefaultAccount string        // account of events on a bare topic subject ("default")

	DeliveryTimeout time.Duration // whole-request deadline (5s)
	MaxInFlight     int           // requests in flight per webhook across replicas (10)
	BatchMaxEvents  int           // events per request (1000)
	BatchMaxBytes   int           // body size cap per request (4 MiB)
	BatchLinger     time.Duration // how long a partial batch waits for more events (200ms)
	BackoffBase     time.Duration // first retry delay (1s)
	BackoffMax      time.Duration // retry delay cap (1h)
	DisableAfter    time.Duration // continuous error before disabling (48h)
	Lease           time.Duration // semaphore lease (30s; at least MinLease)

	// ReconcileInterval is how often each replica checks the registry
	// revision (500ms): changes reach every replica within about that.
	ReconcileInterval time.Duration

	AllowInsecureEndpoints bool   // permit loopback/private targets (tests, local development)
	UserAgent              string // User-Agent header ("webhookd")

	Observer Observer // told about every request, for metrics (none)
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Stream == "" {
		c.Stream = "EVENTS"
	}
	if len(c.Subjects) == 0 {
		c.Subjects = []string{DefaultSubject}
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.DeadLetter == "" {
		c.DeadLetter = "webhookd.deadletter"
	}
	if c.DefaultAccount == "" {
		c.DefaultAccount = "default"
	}
	def(&c.DeliveryTimeout, 5*time.Second)
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 10
	}
	if c.BatchMaxEvents <= 0 {
		c.BatchMaxEvents = 1000
	}
	if c.BatchMaxBytes <= 0 {
		c.BatchMaxBytes = batcher.DefaultMaxBytes
	}
	def(&c.BatchLinger, 200*time.Millisecond)
	def(&c.BackoffBase, time.Second)
	def(&c.BackoffMax, time.Hour)
	def(&c.DisableAfter, 48*time.Hour)
	def(&c.Lease, 30*time.Second)
	def(&c.StreamMaxAge, 72*time.Hour)
	if c.StreamMaxAge < c.DisableAfter+24*time.Hour {
		c.StreamMaxAge = c.DisableAfter + 24*time.Hour
	}
	def(&c.ReconcileInterval, 500*time.Millisecond)
	if c.UserAgent == "" {
		c.UserAgent = "webhookd"
	}
	return c
}

// MinLease is the shortest semaphore lease that outlives what a slot
// covers: the linger and up to two request deadlines, plus a second of
// margin. A shorter lease could expire while its request is in flight and
// let more than MaxInFlight run.
func MinLease(deliveryTimeout, linger time.Duration) time.Duration {
	return 2*deliveryTimeout + linger + time.Second
}

// ackWait is how long a fetched message may stay unacknowledged before
// JetStream redelivers it: a crashed replica's batches come back after
// it (20.4 s with the defaults). It covers the linger, the request and the
// acks with a wide margin; longer waits (for a slot) refresh it with
// InProgress.
func (c Config) ackWait() time.Duration {
	return 2*(c.DeliveryTimeout+c.BatchLinger) + 10*time.Second
}

// Dispatcher delivers events to every enabled webhook.
type Dispatcher struct {
	cfg    Config
	js     jetstream.JetStream
	store  *subscriptions.Store
	log    zerolog.Logger
	client *http.Client

	mu      sync.Mutex
	runners map[string]*runner
	applied map[string]string // webhook id -> consumer signature applied
	wg      sync.WaitGroup    // runners and their in-flight deliveries

	// heal asks the reconciler for a full pass at its next tick: a runner
	// found its consumer (or the whole stream) missing, e.g. after a NATS
	// server came back without its store.
	heal atomic.Bool

	stats Stats
}

// Stats are counters since start, for logs, metrics and tests.
type Stats struct {
	Requests     atomic.Int64 // requests sent
	Succeeded    atomic.Int64 // requests answered 200/201/202
	Failed       atomic.Int64 // requests that failed
	InFlight     atomic.Int64 // requests in flight now, on this replica
	Delivered    atomic.Int64 // events acknowledged after a successful request
	DeadLettered atomic.Int64 // events set aside (first sighting only)
	Disabled     atomic.Int64 // webhooks this replica disabled
}

// New returns a Dispatcher. It does no I/O; Run creates the streams.
func New(cfg Config, js jetstream.JetStream, store *subscriptions.Store, log zerolog.Logger) (*Dispatcher, error) {
	if js == nil || store == nil {
		return nil, errors.New("dispatcher: nil JetStream or store")
	}
	cfg = cfg.withDefaults()
	for _, s := range cfg.Subjects {
		if err := CheckStreamSubject(s); err != nil {
			return nil, fmt.Errorf("dispatcher: stream subject %q: %w", s, err)
		}
	}
	if minLease := MinLease(cfg.DeliveryTimeout, cfg.BatchLinger); cfg.Lease < minLease {
		return nil, fmt.Errorf("dispatcher: lease %s is shorter than MinLease %s", cfg.Lease, minLease)
	}
	return &Dispatcher{
		cfg:     cfg,
		js:      js,
		store:   store,
		log:     log,
		client:  newClient(cfg),
		runners: make(map[string]*runner),
		applied: make(map[string]string),
	}, nil
}

// Stats returns the dispatcher's counters.
func (d *Dispatcher) Stats() *Stats { return &d.stats }

// Run creates the streams idempotently, then delivers until ctx is done.
// It returns once in-flight requests have finished (each is bounded by
// DeliveryTimeout) and unsent batches have been handed back to JetStream.
func (d *Dispatcher) Run(ctx context.Context) error {
	if err := d.ensureStreams(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.reconcileLoop(gctx) })
	g.Go(func() error { return d.sweepLoop(gctx) })
	g.Go(func() error { return d.catalogLoop(gctx) })
	err := g.Wait()
	d.stopAll()
	d.wg.Wait()
	return err
}

// ensureStreams creates or updates the event and dead-letter streams,
// retrying while NATS is unreachable (a replica may start before NATS).
func (d *Dispatcher) ensureStreams(ctx context.Context) error {
	delay := 100 * time.Millisecond
	for {
		err := d.createStreams(ctx)
		if err == nil {
			return nil
		}
		if !retryable(err) {
			return err
		}
		d.log.Warn().Err(err).Msg("creating streams; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func retryable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) || isConnErr(err)
}

func (d *Dispatcher) createStreams(ctx context.Context) error {
	c := d.cfg
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := d.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        c.Stream,
		Description: "webhookd events (subjects = topics)",
		Subjects:    c.Subjects,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      c.StreamMaxAge,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Duplicates:  2 * time.Minute,
		Replicas:    c.Replicas,
	}); err != nil {
		return fmt.Errorf("stream %s: %w", c.Stream, err)
	}
	if _, err := d.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        c.Stream + "_DEADLETTER",
		Description: "webhookd events set aside, with the reason in the Webhookd-Reason header",
		Subjects:    []string{c.DeadLetter + ".>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      7 * 24 * time.Hour,
		Storage:     jetstream.FileStorage,
		Duplicates:  10 * time.Minute, // collapses copies seen by several webhooks' consumers
		Replicas:    c.Replicas,
	}); err != nil {
		return fmt.Errorf("stream %s_DEADLETTER: %w", c.Stream, err)
	}
	return nil
}
