package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"
)

// partitions runs this replica's partition consumers: start and stop are
// the owner's callbacks (owner.go), called as leases are won and given up.
type partitions struct {
	cfg     Config
	js      jetstream.JetStream
	streams *streams
	idx     *index
	hooks   *hooks
	retry   *retrier
	dead    *deadLetterer
	budget  *semaphore.Weighted
	topics  *topicNoter
	log     zerolog.Logger
	stats   *Stats

	mu      sync.Mutex
	running map[int]*partitionRun
	gen     atomic.Int64 // bumped each time a runner recreates the streams
	healMu  sync.Mutex   // one stream recreation at a time
}

type partitionRun struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	kick context.CancelFunc // ends the current pull: the consumer was replaced
	gen  int64              // the streams' generation its consumer handle is from
}

// setKick records how to end the current pull.
func (r *partitionRun) setKick(f context.CancelFunc) {
	r.mu.Lock()
	r.kick = f
	r.mu.Unlock()
}

// heal recreates the streams, once per loss: a runner whose consumer
// handle is of generation gen recreates them only if no other runner did
// since, and then has every other runner on an old handle take a fresh
// one. It returns the current generation.
func (ps *partitions) heal(ctx context.Context, gen int64) (int64, error) {
	ps.healMu.Lock()
	defer ps.healMu.Unlock()
	if cur := ps.gen.Load(); cur != gen {
		return cur, nil // healed by another partition already
	}
	if err := ps.streams.create(ctx); err != nil {
		return gen, err
	}
	gen = ps.gen.Add(1)
	go ps.kickStale(gen) // not from under this partition's own loop
	return gen, nil
}

// setGen records the streams' generation of the run's consumer handle.
func (r *partitionRun) setGen(g int64) {
	r.mu.Lock()
	r.gen = g
	r.mu.Unlock()
}

// kickStale ends the current pull of every partition whose consumer
// handle predates generation gen, so it takes a fresh one: after the
// streams were recreated, a pull on the old consumer would otherwise wait
// out its heartbeats (20 s and more). A pull on a current handle is left
// alone (ending it would drop the messages in flight to it).
func (ps *partitions) kickStale(gen int64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, r := range ps.running {
		r.mu.Lock()
		if r.kick != nil && r.gen < gen {
			r.kick()
		}
		r.mu.Unlock()
	}
}

// start begins consuming partition k.
func (ps *partitions) start(k int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if _, ok := ps.running[k]; ok {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &partitionRun{cancel: cancel, done: make(chan struct{})}
	ps.running[k] = run
	go func() {
		defer close(run.done)
		ps.consume(ctx, k, run)
	}()
}

// stop ends partition k's fetch loop and returns once it has ended;
// events already handed to webhooks are delivered (or handed back) by
// their hooks.
func (ps *partitions) stop(k int) {
	ps.mu.Lock()
	run, ok := ps.running[k]
	delete(ps.running, k)
	ps.mu.Unlock()
	if ok {
		run.cancel()
		<-run.done
	}
}

// consume is partition k's fetch loop.
func (ps *partitions) consume(ctx context.Context, k int, run *partitionRun) {
	log := ps.log.With().Int("partition", k).Logger()
	select {
	case <-ps.idx.Loaded():
	case <-ctx.Done():
		return
	}
	var cons jetstream.Consumer
	pause := time.Duration(0)
	for ctx.Err() == nil {
		if pause > 0 && !sleep(ctx, pause) {
			return
		}
		if cons == nil {
			gen := ps.gen.Load()
			c, err := ensurePartition(ctx, ps.js, ps.cfg, k, false, log)
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				// The server lost the stream (restarted without its
				// store, or an operator deleted it): recreate it rather
				// than stall. Whatever it held is gone.
				log.Error().Str("stream", ps.cfg.Stream).Msg("event stream missing on the NATS server; recreating it")
				if gen, err = ps.heal(ctx, gen); err == nil {
					c, err = ensurePartition(ctx, ps.js, ps.cfg, k, false, log)
				}
			}
			if err != nil {
				if ctx.Err() == nil && pause == 0 {
					log.Warn().Err(err).Msg("partition consumer; retrying")
				}
				pause = nextPause(pause)
				continue
			}
			cons = c
			run.setGen(gen)
		}
		fctx, kick := context.WithCancel(ctx)
		run.setKick(kick)
		err := ps.cycle(fctx, cons)
		kicked := fctx.Err() != nil && ctx.Err() == nil
		kick()
		if kicked {
			cons = nil // take a fresh handle: the consumer was replaced
			continue
		}
		if err != nil {
			if ctx.Err() == nil && pause == 0 {
				log.Warn().Err(err).Msg("fetching events; retrying")
			}
			cons = nil
			pause = nextPause(pause)
			continue
		}
		pause = 0
	}
}

// cycle pulls what the partition has (waiting for a first event) within
// the byte budget and routes it.
func (ps *partitions) cycle(ctx context.Context, cons jetstream.Consumer) error {
	msgs, err := fetch(ctx, cons, 1, 0, idleWait)
	if err != nil || len(msgs) == 0 {
		return err
	}
	held := heldBatch{budget: ps.budget, stats: ps.stats}
	if held.reserve(ctx, ps.cfg.BatchMaxBytes, msgs) {
		if room := ps.cfg.BatchMaxBytes - len(msgs[0].Data()); room > 0 {
			more, err := fetch(ctx, cons, ps.cfg.BatchMaxEvents-1, room, 0)
			msgs = append(msgs, more...)
			if err != nil && ctx.Err() == nil {
				ps.log.Debug().Err(err).Msg("filling a partition batch")
			}
		}
		held.shrink(msgs)
	}
	// Every registry change made before these events were published is
	// applied before they are routed: a webhook created just before an
	// event gets it.
	if err := ps.idx.syncAfter(ctx, time.Now()); err != nil {
		// The index may miss a webhook created just before these events:
		// hand them back rather than route them on an old view.
		for _, m := range msgs {
			_ = m.NakWithDelay(handBackDelay(m))
		}
		held.release()
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("syncing the webhook index: %w", err)
	}
	// Each event's bytes now go back with its fan. An event larger than
	// the reservation (one too large for any request) carries only what
	// was reserved.
	left := held.n
	held.n = 0
	for _, m := range msgs {
		n := min(int64(len(m.Data())), left)
		left -= n
		release := func() {}
		if n > 0 {
			release = func() {
				ps.budget.Release(n)
				ps.stats.BufferedBytes.Add(-n)
			}
		}
		ps.route(ctx, m, release)
	}
	if left > 0 {
		ps.budget.Release(left)
		ps.stats.BufferedBytes.Add(-left)
	}
	return nil
}

// route fans m out to the webhooks of its account subscribed to its
// topic that were active when it was stored, as far as the index knows:
// the slot script's ActiveSince (hook.send) is the check that decides.
func (ps *partitions) route(ctx context.Context, m jetstream.Msg, release func()) {
	subject := unpartition(m.Subject())
	topic, account, err := ParseSubject(subject, ps.cfg.DefaultAccount)
	if err != nil || !validAccount(account) {
		ps.dead.set(ctx, m, "bad_subject", "subject is not <topic> or <topic>.<account>")
		release()
		return
	}
	ps.topics.note(subject, account, topic)
	md, err := m.Metadata()
	if err != nil {
		_ = m.Nak()
		release()
		return
	}
	targets := ps.idx.Targets(account, topic)
	n := 0
	for _, w := range targets {
		if !md.Timestamp.Before(w.ActiveSince) {
			n++
		}
	}
	if n == 0 {
		_ = m.Ack()
		release()
		return
	}
	f := &fan{msg: m, subject: subject, md: md, release: release, left: n}
	for _, w := range targets {
		if !md.Timestamp.Before(w.ActiveSince) {
			ps.hooks.push(w.ID, &share{f: f, webhook: w.ID, retry: ps.retry})
		}
	}
}

// stopAll stops every partition (shutdown).
func (ps *partitions) stopAll() {
	ps.mu.Lock()
	ks := make([]int, 0, len(ps.running))
	for k := range ps.running {
		ks = append(ks, k)
	}
	ps.mu.Unlock()
	for _, k := range ks {
		ps.stop(k)
	}
}
