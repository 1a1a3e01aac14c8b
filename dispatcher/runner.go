package dispatcher

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"

	"github.com/webhookd/webhookd/subscriptions"
)

const (
	// idleWait is how long one pull request waits for a first event. Long
	// polls keep idle webhooks cheap: one pull request per webhook per
	// replica every idleWait, plus heartbeats.
	idleWait      = 30 * time.Second
	idleHeartbeat = 10 * time.Second
	// maxHold is the longest a fetched event is held while waiting for a
	// slot of a backing-off webhook; longer waits hand it back to the
	// stream (NakWithDelay) and the runner sleeps instead.
	maxHold = 2 * time.Second
	// maxSleep caps a backing-off runner's sleep, so it notices within
	// that time that another replica's probe cleared the error state.
	maxSleep = 5 * time.Second
)

// errGone is returned when the webhook was disabled or deleted.
var errGone = errors.New("dispatcher: webhook disabled or deleted")

// runner is one webhook's fetch loop on this replica.
type runner struct {
	cfg     Config
	plan    runPlan
	js      jetstream.JetStream
	id      string
	wh      atomic.Pointer[subscriptions.Webhook]
	slots   slotStore
	courier *courier
	budget  *semaphore.Weighted // the replica's byte budget
	local   *semaphore.Weighted // never ask Redis for an (N+1)th slot
	stats   *Stats
	heal    func(id string)
	log     zerolog.Logger
	wg      *sync.WaitGroup // the fleet's: runners and deliveries

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (r *runner) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	r.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(r.done)
		r.loop(ctx)
	}()
}

// stop ends the fetch loop and waits for it; deliveries already started
// finish on their own (each bounded by DeliveryTimeout).
func (r *runner) stop() {
	r.once.Do(func() { r.cancel() })
	<-r.done
}

func (r *runner) loop(ctx context.Context) {
	var cons jetstream.Consumer
	pause := time.Duration(0)
	for ctx.Err() == nil {
		if pause > 0 && !sleep(ctx, pause) {
			return
		}
		if cons == nil {
			c, err := r.js.Consumer(ctx, r.plan.stream, r.plan.consumer(r.id))
			if err != nil {
				if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
					r.heal(r.id) // the reconciler recreates it
				}
				pause = nextPause(pause) // NATS may be away
				continue
			}
			cons = c
		}
		wait, err := r.cycle(ctx, cons)
		switch {
		case errors.Is(err, errGone):
			pause = maxSleep // the reconciler stops this runner shortly
		case err != nil:
			if ctx.Err() == nil && pause == 0 {
				r.log.Warn().Err(err).Msg("fetching events; retrying")
			}
			// A fresh handle next time, whatever the error: a pull on a
			// deleted consumer can also fail as "no responders" or a
			// missed heartbeat, and only the lookup then says it is gone
			// (and has it made again).
			cons = nil
			pause = nextPause(pause)
		default:
			pause = wait
		}
	}
}

func nextPause(p time.Duration) time.Duration {
	return min(max(2*p, 100*time.Millisecond), maxSleep)
}

// cycle pulls one batch and hands it to a delivery goroutine. It returns
// how long to wait before the next cycle.
func (r *runner) cycle(ctx context.Context, cons jetstream.Consumer) (time.Duration, error) {
	if err := r.local.Acquire(ctx, 1); err != nil {
		return 0, nil
	}
	var held heldBatch
	handedOff := false
	defer func() {
		if !handedOff {
			held.release()
			r.local.Release(1)
		}
	}()

	// 1. Wait for a first event, holding no Redis slot and no budget.
	msgs, err := fetch(ctx, cons, 1, 0, r.plan.idleWait)
	if err == nil && len(msgs) == 0 && r.plan.onIdle != nil {
		r.plan.onIdle(ctx, r.id)
	}
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	if msgs = r.due(msgs); len(msgs) == 0 {
		return 0, nil
	}
	first := time.Now()

	// 2. Take a request slot (the Redis lease).
	holder := uuid.NewString()
	wait, since, err := r.acquire(ctx, holder, msgs)
	if err != nil || wait > 0 {
		return wait, err
	}

	// 3. Reserve a batch's bytes, then fill the batch with what arrives
	// within the linger and fits.
	held = heldBatch{budget: r.budget, stats: r.stats}
	if held.reserve(ctx, r.cfg.BatchMaxBytes, msgs) {
		msgs = r.fill(ctx, cons, msgs, first)
		held.shrink(msgs)
	}

	msgs = r.planned(msgs, since)

	// 4. Deliver concurrently; the slot, the local gate and the bytes are
	// released when the delivery is done.
	handedOff = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.local.Release(1)
		defer held.release()
		r.courier.deliver(*r.wh.Load(), holder, msgs)
	}()
	return 0, nil
}

// fill adds to msgs, the batch begun at first, what arrives within the
// linger and fits in a batch. A message may carry several events (a retry
// bundle), and how many is known only once it is fetched: so fill asks for
// as many messages as the events still wanted would fill at the most a
// message has carried so far, and again while it gets them all; a bundle
// larger than any before may still bring more events than a batch, and
// trim hands those back. Asking for a message per event still wanted would
// bring, and hand back at once, dozens of bundles a cycle: a redelivery
// each, counted as a try in the attempt log.
func (r *runner) fill(ctx context.Context, cons jetstream.Consumer, msgs []jetstream.Msg, first time.Time) []jetstream.Msg {
	events, size, most := 0, 0, 1
	count := func(ms []jetstream.Msg) {
		for _, m := range ms {
			n := r.plan.eventsIn(m)
			events, size, most = events+n, size+len(m.Data()), max(most, n)
		}
	}
	count(msgs)
	for {
		k := (r.cfg.BatchMaxEvents - events) / most
		room := r.cfg.BatchMaxBytes - size
		if k <= 0 || room <= 0 {
			break
		}
		more, err := fetch(ctx, cons, k, room, r.cfg.BatchLinger-time.Since(first))
		msgs = append(msgs, more...)
		count(more)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Debug().Err(err).Msg("filling batch")
			}
			break
		}
		if len(more) < k || r.plan.events == nil || time.Since(first) >= r.cfg.BatchLinger {
			break
		}
	}
	return r.trim(r.due(msgs))
}

// due hands back, until they are due, the messages of msgs the plan says
// may not be sent yet (a split-off retry bundle's backoff), and returns
// the others.
func (r *runner) due(msgs []jetstream.Msg) []jetstream.Msg {
	if r.plan.notBefore == nil {
		return msgs
	}
	now := time.Now()
	keep := msgs[:0]
	for _, m := range msgs {
		if t := r.plan.notBefore(m); t.After(now) {
			_ = m.NakWithDelay(t.Sub(now))
			continue
		}
		keep = append(keep, m)
	}
	return keep
}

// trim keeps the first messages of msgs that carry at most a batch of
// events, and hands the rest back at once (one delivery is one batch, so
// the in-flight cap spreads a backlog over parallel requests).
func (r *runner) trim(msgs []jetstream.Msg) []jetstream.Msg {
	if r.plan.events == nil {
		return msgs
	}
	n := 0
	for i, m := range msgs {
		n += r.plan.events(m)
		if n > r.cfg.BatchMaxEvents && i > 0 {
			nakAll(msgs[i:], 0)
			return msgs[:i]
		}
	}
	return msgs
}

// planned applies the plan to fetched messages: wrapped, and the stale
// ones acknowledged and dropped. since is the webhook's ActiveSince as
// Redis gave it with the slot: newer than any cached record.
func (r *runner) planned(msgs []jetstream.Msg, since time.Time) []jetstream.Msg {
	if r.plan.expand != nil {
		var out []jetstream.Msg
		for _, m := range msgs {
			out = r.plan.expand(r.id, m, out)
		}
		msgs = out
	}
	if r.plan.stale == nil {
		return msgs
	}
	w, keep := *r.wh.Load(), msgs[:0]
	if since.After(w.ActiveSince) {
		w.ActiveSince = since
	}
	for _, m := range msgs {
		if r.plan.stale(w, m) {
			_ = m.Ack()
		} else {
			keep = append(keep, m)
		}
	}
	return keep
}

// acquire takes a request slot for holder while holding msgs. It returns
// a positive wait when the webhook is backing off: the events went back to
// the stream, to come again when the next attempt is due.
func (r *runner) acquire(ctx context.Context, holder string, msgs []jetstream.Msg) (time.Duration, time.Time, error) {
	lastProgress := time.Now()
	for {
		slot, err := r.slots.AcquireSlot(ctx, r.id, holder, r.cfg.MaxInFlight, r.cfg.Lease)
		switch {
		case err != nil:
			nakAll(msgs, time.Second) // Redis away: hand back and pause
			return 0, time.Time{}, err
		case slot.Gone:
			nakAll(msgs, maxSleep)
			return 0, time.Time{}, errGone
		case slot.Acquired:
			return 0, slot.ActiveSince, nil
		case slot.RetryAfter > maxHold:
			nakAll(msgs, slot.RetryAfter)
			return min(jitter(slot.RetryAfter), maxSleep), time.Time{}, nil
		}
		if !sleep(ctx, jitter(max(slot.RetryAfter, 5*time.Millisecond))) {
			nakAll(msgs, 0)
			return 0, time.Time{}, ctx.Err()
		}
		if time.Since(lastProgress) > r.cfg.ackWait()/3 {
			inProgress(msgs)
			lastProgress = time.Now()
		}
	}
}

// fetch pulls up to n messages of at most maxBytes in all (0: no byte
// cap), waiting at most wait for them. A wait of (almost) nothing takes
// only what is there now.
func fetch(ctx context.Context, cons jetstream.Consumer, n, maxBytes int, wait time.Duration) ([]jetstream.Msg, error) {
	var opts []jetstream.FetchOpt
	if maxBytes > 0 {
		opts = append(opts, jetstream.FetchMaxBytes(maxBytes))
	}
	// No pull is bound to ctx inside nats.go: a pull whose context ends
	// while the server is sending drops, on the client, the messages in
	// flight to it, and they wait out AckWait unacknowledged (a partition
	// given up mid-poll stalled its next owner for AckWait). A short pull
	// is waited for; the long idle poll is left when ctx ends, and what
	// it brings afterwards is handed back at once (pollRest).
	long := wait >= idleWait
	switch {
	case long:
		opts = append(opts, jetstream.FetchMaxWait(wait), jetstream.FetchHeartbeat(idleHeartbeat))
	default:
		// FetchNoWait takes no byte cap: a 5 ms wait is as good.
		opts = append(opts, jetstream.FetchMaxWait(max(wait, 5*time.Millisecond)))
	}
	batch, err := cons.Fetch(n, opts...)
	if err != nil {
		return nil, err
	}
	msgs := make([]jetstream.Msg, 0, min(n, 64))
	ch := batch.Messages()
	var done <-chan struct{}
	if long {
		done = ctx.Done()
	}
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				if err := batch.Error(); err != nil && !benignFetchErr(err) {
					return msgs, err
				}
				return msgs, nil
			}
			msgs = append(msgs, m)
		case <-done:
			go pollRest(msgs, ch)
			return nil, nil
		}
	}
}

// pollRest hands back what a long poll left by its caller had and brings
// until it ends (at the latest when the server expires it).
func pollRest(had []jetstream.Msg, ch <-chan jetstream.Msg) {
	nakAll(had, 0)
	for m := range ch {
		_ = m.Nak()
	}
}

func benignFetchErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, jetstream.ErrMaxBytesExceeded)
}

// nakAll hands msgs back to JetStream for redelivery after delay.
func nakAll(msgs []jetstream.Msg, delay time.Duration) {
	for _, m := range nakShares(msgs) {
		if delay > 0 {
			_ = m.NakWithDelay(delay)
		} else {
			_ = m.Nak()
		}
	}
}

// inProgress resets the AckWait of msgs.
func inProgress(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.InProgress()
	}
}

// jitter spreads d over [0.8d, 1.2d] so replicas and webhooks desynchronise.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
