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

// errGone: the webhook was disabled or deleted.
var errGone = errors.New("dispatcher: webhook disabled or deleted")

// runner is one webhook's fetch loop on this replica.
type runner struct {
	d      *Dispatcher
	id     string
	wh     atomic.Pointer[subscriptions.Webhook]
	slots  *semaphore.Weighted // local pre-gate: never ask Redis for an (N+1)th slot
	cancel context.CancelFunc
	done   chan struct{}
	stopMu sync.Once
}

func (d *Dispatcher) newRunner(w subscriptions.Webhook) *runner {
	r := &runner{d: d, id: w.ID, slots: semaphore.NewWeighted(int64(d.cfg.MaxInFlight)), done: make(chan struct{})}
	r.wh.Store(&w)
	return r
}

// setWebhook swaps in a newer record (endpoint, secret, name).
func (r *runner) setWebhook(w subscriptions.Webhook) { r.wh.Store(&w) }

func (r *runner) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	r.cancel = cancel
	r.d.wg.Add(1)
	go func() {
		defer r.d.wg.Done()
		defer close(r.done)
		r.loop(ctx)
	}()
}

// stop ends the fetch loop and waits for it; deliveries already started
// finish on their own (each bounded by DeliveryTimeout).
func (r *runner) stop() {
	r.stopMu.Do(func() { r.cancel() })
	<-r.done
}

func (r *runner) loop(ctx context.Context) {
	log := r.d.log.With().Str("webhook_id", r.id).Logger()
	var cons jetstream.Consumer
	pause := time.Duration(0)
	for ctx.Err() == nil {
		if pause > 0 && !sleep(ctx, pause) {
			return
		}
		if cons == nil {
			c, err := r.d.js.Consumer(ctx, r.d.cfg.Stream, consumerName(r.id))
			if err != nil {
				if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
					r.d.heal.Store(true) // the reconciler recreates it
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
				log.Warn().Err(err).Msg("fetching events; retrying")
			}
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				cons = nil
			}
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
	if err := r.slots.Acquire(ctx, 1); err != nil {
		return 0, nil
	}
	handedOff := false
	defer func() {
		if !handedOff {
			r.slots.Release(1)
		}
	}()

	// 1. Wait for a first event, holding no Redis slot.
	msgs, err := r.fetch(ctx, cons, 1, idleWait)
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	first := time.Now()

	// 2. Take a request slot (the Redis lease).
	holder := uuid.NewString()
	wait, err := r.acquire(ctx, holder, msgs)
	if err != nil || wait > 0 {
		return wait, err
	}

	// 3. Fill the batch with what arrives within the linger.
	if n := r.d.cfg.BatchMaxEvents - 1; n > 0 {
		more, err := r.fetch(ctx, cons, n, r.d.cfg.BatchLinger-time.Since(first))
		msgs = append(msgs, more...)
		if err != nil && ctx.Err() == nil {
			r.d.log.Debug().Err(err).Str("webhook_id", r.id).Msg("filling batch")
		}
	}

	// 4. Deliver concurrently; the slot and the local gate are released
	// when the request is done.
	handedOff = true
	r.d.wg.Add(1)
	go func() {
		defer r.d.wg.Done()
		defer r.slots.Release(1)
		r.d.deliver(*r.wh.Load(), holder, msgs)
	}()
	return 0, nil
}

// fetch pulls up to n messages, waiting at most wait for them. A wait of
// (almost) nothing takes only what is there now.
func (r *runner) fetch(ctx context.Context, cons jetstream.Consumer, n int, wait time.Duration) ([]jetstream.Msg, error) {
	var (
		batch jetstream.MessageBatch
		err   error
	)
	switch {
	case wait >= idleWait:
		fctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		batch, err = cons.Fetch(n, jetstream.FetchContext(fctx), jetstream.FetchHeartbeat(idleHeartbeat))
	case wait < 5*time.Millisecond:
		batch, err = cons.FetchNoWait(n)
	default:
		batch, err = cons.Fetch(n, jetstream.FetchMaxWait(wait))
	}
	if err != nil {
		return nil, err
	}
	msgs := make([]jetstream.Msg, 0, min(n, 64))
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if err := batch.Error(); err != nil && !benignFetchErr(err) {
		return msgs, err
	}
	return msgs, nil
}

func benignFetchErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, jetstream.ErrNoMessages)
}

// acquire takes a request slot for holder while holding msgs. It returns
// a positive wait when the webhook is backing off: the events went back to
// the stream, to come again when the next attempt is due.
func (r *runner) acquire(ctx context.Context, holder string, msgs []jetstream.Msg) (time.Duration, error) {
	cfg := r.d.cfg
	lastProgress := time.Now()
	for {
		slot, err := r.d.store.AcquireSlot(ctx, r.id, holder, cfg.MaxInFlight, cfg.Lease)
		switch {
		case err != nil:
			nakAll(msgs, time.Second) // Redis away: hand back and pause
			return 0, err
		case slot.Gone:
			nakAll(msgs, maxSleep)
			return 0, errGone
		case slot.Acquired:
			return 0, nil
		case slot.RetryAfter > maxHold:
			nakAll(msgs, slot.RetryAfter)
			return min(jitter(slot.RetryAfter), maxSleep), nil
		}
		if !sleep(ctx, jitter(max(slot.RetryAfter, 5*time.Millisecond))) {
			nakAll(msgs, 0)
			return 0, ctx.Err()
		}
		if time.Since(lastProgress) > cfg.ackWait()/3 {
			for _, m := range msgs {
				_ = m.InProgress()
			}
			lastProgress = time.Now()
		}
	}
}

// nakAll hands msgs back to JetStream for redelivery after delay.
func nakAll(msgs []jetstream.Msg, delay time.Duration) {
	for _, m := range msgs {
		if delay > 0 {
			_ = m.NakWithDelay(delay)
		} else {
			_ = m.Nak()
		}
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
