// Package dispatcher consumes events from JetStream, batches them per
// webhook, and delivers signed requests under a Redis lease semaphore,
// with backoff, the error state and the disable hand-off.
//
// It has three parts, each owning what it uses:
//
//   - the reconciler (reconcile.go) keeps the stream's consumers and this
//     replica's runners in line with the registry, and refuses to act on
//     a registry that is not this deployment's (epoch.go);
//   - a runner (runner.go) is one webhook's fetch loop on this replica: it
//     takes a request slot (a Redis lease, at most MaxInFlight per webhook
//     across replicas) and a share of the byte budget before it pulls a
//     batch, so no message waits in a client buffer while its AckWait
//     runs and memory stays bounded by bytes;
//   - a courier (courier.go, send.go, isolate.go) delivers one batch:
//     prepare → pack → post → settle, checking the lease right before
//     every request and isolating an event the receiver keeps refusing.
//
// Per enabled webhook there is one durable pull consumer (wh_<id>),
// shared by every replica. A failed batch is handed back with
// NakWithDelay: JetStream is both the durable queue and the retry
// schedule.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// Dispatcher delivers events to every enabled webhook.
type Dispatcher struct {
	cfg     Config
	streams *streams
	store   Store
	log     zerolog.Logger
	rec     *reconciler
	part    *partitioned // nil: per-webhook consumption
	dead    *deadLetterer
	stats   *Stats
	ext     *extras // replays, test sends, operator events (recovery.go); nil without an extraStore
}

// Stats are this replica's counters and gauges since start, for metrics
// and tests.
type Stats struct {
	InFlight      atomic.Int64 // requests in flight now
	Delivered     atomic.Int64 // events acknowledged after a successful request
	DeadLettered  atomic.Int64 // events set aside (first sighting only)
	Disabled      atomic.Int64 // webhooks this replica disabled
	LostLeases    atomic.Int64 // requests not sent because their lease had expired
	BufferedBytes atomic.Int64 // bytes of fetched events held now

	Undeliverable    atomic.Int64 // enabled webhooks whose consumer cannot be made
	RegistryMismatch atomic.Int64 // 1 while the registry is not this deployment's
}

// New returns a Dispatcher. It does no I/O; Run creates the streams.
func New(cfg Config, js jetstream.JetStream, store Store, log zerolog.Logger) (*Dispatcher, error) {
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
	if cfg.MaxBufferedBytes < int64(cfg.BatchMaxBytes) {
		// One batch must fit in the budget, or its fetch would wait forever.
		return nil, fmt.Errorf("dispatcher: MaxBufferedBytes %d is less than BatchMaxBytes %d", cfg.MaxBufferedBytes, cfg.BatchMaxBytes)
	}
	stats := new(Stats)
	st := &streams{cfg: cfg, js: js, log: log, registryEpoch: store.EnsureEpoch}
	c := &courier{
		cfg:    cfg,
		slots:  store,
		states: store,
		dead:   &deadLetterer{prefix: cfg.DeadLetter, js: js, log: log, stats: stats},
		client: newClient(cfg),
		log:    log,
		stats:  stats,

		lostLogger: log.Sample(&zerolog.BurstSampler{Burst: 1, Period: time.Minute}),
	}
	fleet := &fleet{
		cfg:     cfg,
		plan:    eventPlan(cfg),
		js:      js,
		slots:   store,
		courier: c,
		budget:  semaphore.NewWeighted(cfg.MaxBufferedBytes),
		log:     log,
		stats:   stats,
		runners: make(map[string]*runner),
	}
	rec := &reconciler{
		cfg:     cfg,
		js:      js,
		streams: st,
		reg:     store,
		fleet:   fleet,
		log:     log,
		stats:   stats,
		applied: make(map[string]string),
		problem: make(map[string]string),
	}
	fleet.heal = func(string) { rec.requestFullPass() }
	d := &Dispatcher{cfg: cfg, streams: st, store: store, log: log, rec: rec, stats: stats, dead: c.dead}
	d.ext = newExtras(cfg, js, store, c, log)
	if cfg.Partitions > 0 {
		p, err := newPartitioned(cfg, js, store, c, rec, log, stats)
		if err != nil {
			return nil, err
		}
		d.part = p
	}
	return d, nil
}

// Stats returns the dispatcher's counters.
func (d *Dispatcher) Stats() *Stats { return d.stats }

// ActiveWebhooks is the number of webhooks this replica is consuming for.
func (d *Dispatcher) ActiveWebhooks() int {
	if d.part != nil {
		return d.part.activeWebhooks(d.cfg)
	}
	return d.rec.fleet.size()
}

// Run creates the streams idempotently, then delivers until ctx is done.
// It returns once in-flight requests have finished (each is bounded by
// DeliveryTimeout) and unsent batches have been handed back to JetStream.
func (d *Dispatcher) Run(ctx context.Context) error {
	if err := d.streams.ensure(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	xctx, stopExtras := context.WithCancel(context.WithoutCancel(ctx))
	xdone := make(chan error, 1)
	go func() { xdone <- d.ext.run(xctx) }()
	// After delivery, so the last transitions are still reported.
	defer func() {
		stopExtras()
		if err := <-xdone; err != nil {
			d.log.Warn().Err(err).Msg("replays, test sends and operator events stopped with an error")
		}
	}()
	if d.part != nil {
		return d.part.run(ctx, d.cfg, d.store, d.log, d.stats)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return strays(gctx, d.cfg, d.streams.js, d.dead, d.log) })
	g.Go(func() error { return d.rec.Run(gctx) })
	g.Go(func() error { return sweep(gctx, d.cfg, d.store, d.log, d.stats) })
	g.Go(func() error { return catalog(gctx, d.cfg, d.streams, d.store, d.log) })
	err := g.Wait()
	d.rec.fleet.stopAll()
	return err
}
