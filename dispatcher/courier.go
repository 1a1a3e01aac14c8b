package dispatcher

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/batcher"
	"github.com/webhookd/webhookd/dispatcher/activity"
	"github.com/webhookd/webhookd/subscriptions"
)

// courier delivers batches: prepare → pack → post → settle. It is shared
// by every runner of a replica and holds no per-batch state.
type courier struct {
	cfg    Config
	slots  slotStore
	states stateStore
	dead   *deadLetterer
	client *http.Client
	log    zerolog.Logger
	stats  *Stats

	lostLogger zerolog.Logger // log sampled to one line a minute
}

// span is a run of a delivery's events, [lo, hi).
type span struct{ lo, hi int }

func (s span) len() int { return s.hi - s.lo }

// delivery is one batch on its way to one webhook under one lease.
type delivery struct {
	c       *courier
	w       subscriptions.Webhook
	holder  string
	msgs    []jetstream.Msg
	evs     []batcher.Event // evs[i] is msgs[i]'s event
	settled []atomic.Bool   // msgs[i] acknowledged or set aside
	// delivered: some request of this delivery succeeded, so the endpoint
	// is answering; a part it refuses is about content, not an outage.
	delivered bool
	// trigger is why this delivery is made, for the attempt log: empty
	// for live traffic (live or retry by the events' attempt count),
	// activity.TriggerReplay or TriggerTest otherwise.
	trigger activity.Trigger
	// failures are failed requests not yet recorded in the attempt log
	// (record.go): whether they get a next_attempt_at is known later.
	failures []activity.Attempt
}

// deliver sends msgs to w in as few requests as the caps allow, one after
// another under the slot holder took, then acknowledges or hands back
// each request's events. It runs to completion even during shutdown:
// every request is bounded by DeliveryTimeout.
func (c *courier) deliver(w subscriptions.Webhook, holder string, msgs []jetstream.Msg) {
	c.deliverAs(w, holder, msgs, "")
}

// deliverAs is deliver for a trigger other than live traffic (a replay).
func (c *courier) deliverAs(w subscriptions.Webhook, holder string, msgs []jetstream.Msg, trigger activity.Trigger) {
	ctx := context.Background()
	defer func() {
		if err := c.slots.ReleaseSlot(ctx, w.ID, holder); err != nil {
			c.log.Debug().Err(err).Str("webhook_id", w.ID).Msg("releasing slot; its lease expires by itself")
		}
	}()
	msgs, evs := c.prepare(ctx, msgs)
	if len(msgs) == 0 {
		return
	}
	packed, tooLarge := batcher.Pack(evs, c.cfg.batchConfig(), c.meta(w, time.Now()))
	d := &delivery{c: c, w: w, holder: holder, msgs: msgs, evs: evs, settled: make([]atomic.Bool, len(msgs)), trigger: trigger}
	for _, i := range tooLarge {
		d.settled[i].Store(true)
		c.dead.set(ctx, msgs[i], batcher.Reason(batcher.ErrTooLarge),
			"event larger than --batch-max-bytes allows in one request")
	}
	parts := make([]span, len(packed))
	for i, p := range packed {
		parts[i] = span{p.Start, p.Start + len(p.Events)}
	}
	stop := d.keepAlive()
	defer stop()
	d.run(ctx, parts)
	d.flushFailures(time.Time{})
	if d.delivered {
		recovered, err := c.states.RecordSuccess(ctx, w.ID)
		if err == nil && recovered {
			c.log.Info().Str("webhook_id", w.ID).Msg("webhook recovered: endpoint answering again")
		}
	}
}

// prepare turns messages into events; the i-th event comes from the i-th
// message returned. Messages that cannot be delivered (a bad subject, not
// JSON, no id, nested too deep...) are dead-lettered and never reach a
// batch.
func (c *courier) prepare(ctx context.Context, msgs []jetstream.Msg) ([]jetstream.Msg, []batcher.Event) {
	keep := msgs[:0]
	evs := make([]batcher.Event, 0, len(msgs))
	for _, m := range msgs {
		topic, _, err := ParseSubject(m.Subject(), c.cfg.DefaultAccount)
		if err != nil {
			c.dead.set(ctx, m, "bad_subject", err.Error())
			continue
		}
		var msgID string
		if h := m.Headers(); h != nil {
			msgID = h.Get(jetstream.MsgIDHeader)
		}
		id, err := batcher.Parse(m.Data(), msgID)
		if err != nil {
			c.dead.set(ctx, m, batcher.Reason(err), err.Error())
			continue
		}
		keep = append(keep, m)
		evs = append(evs, batcher.Event{ExternalID: id, Topic: topic, Payload: m.Data()})
	}
	return keep, evs
}

// run sends parts in order. A failed part is searched for an event the
// receiver refuses (isolate.go); a failure that stands is the webhook's:
// it and every part not yet sent go back to the stream after the backoff.
// A lost lease sends nothing more and hands everything back at once.
func (d *delivery) run(ctx context.Context, parts []span) {
	for i, s := range parts {
		o, sent := d.send(ctx, s)
		if !sent {
			d.handBack(0)
			return
		}
		if o.ok() {
			continue
		}
		switch d.isolate(ctx, s, o) {
		case resolved:
			continue
		case lost:
			d.handBack(0)
			return
		}
		d.fail(ctx, o, parts[i:])
		return
	}
}

// handBack returns every unsettled message to the stream after delay.
func (d *delivery) handBack(delay time.Duration) {
	var back []jetstream.Msg
	for i, m := range d.msgs {
		if !d.settled[i].Swap(true) {
			back = append(back, m)
		}
	}
	nakAll(back, delay)
}

// keepAlive refreshes the AckWait of every unsettled message every
// ackWait/3 until stop is called, so the parts of a batch split into
// several requests, sent one after another, are not redelivered while the
// first part is still being sent: no fault, no duplicate.
func (d *delivery) keepAlive() (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(d.c.cfg.ackWait() / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			for i, m := range d.msgs {
				if !d.settled[i].Load() {
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() { close(done); <-exited }
}

// fail records the failure o of the first of parts and hands every
// unsettled message back for redelivery after the backoff.
func (d *delivery) fail(ctx context.Context, o outcome, parts []span) {
	c, w := d.c, d.w
	res, err := c.states.RecordFailure(ctx, w.ID, subscriptions.Failure{
		Status: o.status, Error: o.String(), StartedAt: o.started,
	}, subscriptions.Backoff{
		Base: c.cfg.BackoffBase, Max: c.cfg.BackoffMax, DisableAfter: c.cfg.DisableAfter,
		Jitter: 0.8 + 0.4*rand.Float64(),
	})
	delay := res.Delay
	if err != nil {
		// Redis away: fall back to this batch's own attempt count.
		delay = c.localBackoff(d.attempts(span{0, len(d.msgs)}))
		c.log.Error().Err(err).Str("webhook_id", w.ID).Msg("recording delivery failure")
	}
	unsent := 0
	for _, s := range parts {
		for i := s.lo; i < s.hi; i++ {
			if !d.settled[i].Load() {
				unsent++
			}
		}
	}
	d.handBack(delay)
	d.flushFailures(time.Now().Add(delay))
	ev := c.log.Warn().Str("webhook_id", w.ID).Str("account_id", w.AccountID).Int("events", unsent).
		Str("error", o.String()).Int("attempt", res.Failures).Dur("retry_in_ms", delay)
	if o.status != 0 {
		ev = ev.Int("status", o.status)
	}
	ev.Msg("delivery failed")
	if res.Disabled {
		c.stats.Disabled.Add(1)
		c.log.Warn().Str("webhook_id", w.ID).Str("account_id", w.AccountID).Time("error_since", res.ErrorSince).
			Msg("webhook disabled: in error longer than disable-after")
	}
}

// attempts is how many times the events of s have been tried, counting
// this time: the highest delivery count among them.
func (d *delivery) attempts(s span) uint64 {
	n := uint64(1)
	for _, m := range d.msgs[s.lo:s.hi] {
		if md, err := m.Metadata(); err == nil {
			n = max(n, md.NumDelivered)
		}
	}
	return n
}

// localBackoff is the retry delay when Redis cannot be asked: exponential
// in the attempt count, capped at BackoffMax.
func (c *courier) localBackoff(attempts uint64) time.Duration {
	delay := c.cfg.BackoffBase
	for i := uint64(1); i < attempts && delay < c.cfg.BackoffMax; i++ {
		delay *= 2
	}
	return jitter(min(delay, c.cfg.BackoffMax))
}

func (c *courier) meta(w subscriptions.Webhook, now time.Time) batcher.Meta {
	return batcher.Meta{AccountID: w.AccountID, WebhookID: w.ID, Timestamp: now, Version: batcher.Version}
}

// lostLog is the logger for requests not sent on a lost lease: a paused
// replica may lose the leases of many webhooks at once, so it says so at
// most once a minute (the lost-lease counter has every occurrence).
func (c *courier) lostLog() *zerolog.Logger { return &c.lostLogger }
