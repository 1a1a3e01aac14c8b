package dispatcher

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/subscriptions"
)

// fullResync bounds how long a replica trusts its view without re-reading
// the registry and re-checking every consumer on the server (heals a lost
// consumer after a NATS restart without its store, or a missed change).
const fullResync = 30 * time.Second

// reconcileLoop keeps this replica's runners and the stream's consumers in
// line with the registry: it polls the registry revision every
// ReconcileInterval and re-applies the whole registry when it changed.
func (d *Dispatcher) reconcileLoop(ctx context.Context) error {
	t := time.NewTicker(d.cfg.ReconcileInterval)
	defer t.Stop()
	lastRev := int64(-1)
	var lastFull time.Time
	failing := false
	for {
		rev, err := d.store.Revision(ctx)
		if d.heal.Swap(false) {
			lastFull = time.Time{}
		}
		if err == nil && (rev != lastRev || time.Since(lastFull) > fullResync) {
			full := time.Since(lastFull) > fullResync
			var ws []subscriptions.Webhook
			if ws, err = d.store.All(ctx); err == nil {
				d.apply(ctx, ws, full)
				lastRev = rev
				if full {
					lastFull = time.Now()
				}
			}
		}
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			d.log.Error().Err(err).Msg("reading webhook registry; delivery goes on with the last known registry")
			failing = true
		case err == nil && failing:
			d.log.Info().Msg("webhook registry readable again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// apply starts, updates and stops runners and consumers to match ws.
// full also re-checks consumers whose configuration looked unchanged and
// deletes consumers of webhooks that no longer exist.
func (d *Dispatcher) apply(ctx context.Context, ws []subscriptions.Webhook, full bool) {
	want := make(map[string]subscriptions.Webhook, len(ws))
	for _, w := range ws {
		if !w.Enabled || len(w.Topics) == 0 {
			continue
		}
		if !validAccount(w.AccountID) {
			d.log.Error().Str("webhook_id", w.ID).Str("account_id", w.AccountID).
				Msg("account id cannot be a subject token; webhook not delivered")
			continue
		}
		want[w.ID] = w
	}

	d.mu.Lock()
	var stop []*runner
	for id, r := range d.runners {
		if _, ok := want[id]; !ok {
			stop = append(stop, r)
			delete(d.runners, id)
		}
	}
	d.mu.Unlock()
	for _, r := range stop {
		r.stop()
		d.deleteConsumer(ctx, r.id)
	}

	for id, w := range want {
		sig := d.signature(w)
		d.mu.Lock()
		applied := d.applied[id] == sig
		d.mu.Unlock()
		if !applied || full {
			if err := d.ensureConsumer(ctx, w); err != nil {
				if ctx.Err() == nil {
					d.log.Error().Err(err).Str("webhook_id", id).Msg("creating consumer")
				}
				continue
			}
			d.mu.Lock()
			d.applied[id] = sig
			d.mu.Unlock()
		}
		d.mu.Lock()
		r, ok := d.runners[id]
		if !ok && ctx.Err() == nil {
			r = d.newRunner(w)
			d.runners[id] = r
			r.start(ctx)
		} else if ok {
			r.setWebhook(w)
		}
		d.mu.Unlock()
	}

	if full {
		d.deleteOrphans(ctx, want)
	}
}

// ensureConsumer creates w's consumer, updates its filters, or replaces it
// when its start time changed (a re-enable: the backlog is dropped and
// delivery restarts at ActiveSince). Every replica may race here; the
// outcome is the same consumer.
func (d *Dispatcher) ensureConsumer(ctx context.Context, w subscriptions.Webhook) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg := d.consumerConfig(w)
	c, err := d.js.Consumer(ctx, d.cfg.Stream, cfg.Durable)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// The server lost the stream (restarted without its store, or an
		// operator deleted it): recreate it rather than stall forever.
		// Whatever it held is gone; events published from now on flow.
		d.log.Error().Str("stream", d.cfg.Stream).Msg("event stream missing on the NATS server; recreating it")
		if err := d.createStreams(ctx); err != nil {
			return err
		}
		c, err = d.js.Consumer(ctx, d.cfg.Stream, cfg.Durable)
	}
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		_, err = d.js.CreateConsumer(ctx, d.cfg.Stream, cfg)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			return nil // another replica won the race with the same config
		}
		return err
	case err != nil:
		return err
	}
	cur := c.CachedInfo().Config
	if cur.OptStartTime == nil || !cur.OptStartTime.Equal(*cfg.OptStartTime) {
		d.log.Info().Str("webhook_id", w.ID).Msg("delivery restarts: backlog before the re-enable dropped")
		if err := d.js.DeleteConsumer(ctx, d.cfg.Stream, cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		_, err = d.js.CreateConsumer(ctx, d.cfg.Stream, cfg)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			return nil
		}
		return err
	}
	have := slices.Clone(cur.FilterSubjects)
	if len(have) == 0 && cur.FilterSubject != "" {
		have = []string{cur.FilterSubject}
	}
	slices.Sort(have)
	if !slices.Equal(have, cfg.FilterSubjects) {
		_, err = d.js.UpdateConsumer(ctx, d.cfg.Stream, cfg)
	}
	return err
}

// deleteConsumer drops a webhook's consumer and with it every pending and
// parked event: a disabled or deleted webhook has no backlog.
func (d *Dispatcher) deleteConsumer(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := d.js.DeleteConsumer(ctx, d.cfg.Stream, consumerName(id))
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		d.log.Error().Err(err).Str("webhook_id", id).Msg("deleting consumer")
		return
	}
	d.mu.Lock()
	delete(d.applied, id)
	d.mu.Unlock()
}

// deleteOrphans removes consumers of webhooks that are disabled or gone
// (for example deleted while no replica ran). Candidates are checked
// against a fresh read of the registry, so a webhook created since want
// was read keeps the consumer another replica just made for it.
func (d *Dispatcher) deleteOrphans(ctx context.Context, want map[string]subscriptions.Webhook) {
	st, err := d.js.Stream(ctx, d.cfg.Stream)
	if err != nil {
		return
	}
	var orphans []string
	names := st.ConsumerNames(ctx)
	for name := range names.Name() {
		if id, ok := strings.CutPrefix(name, "wh_"); ok {
			if _, live := want[id]; !live {
				orphans = append(orphans, id)
			}
		}
	}
	if len(orphans) == 0 {
		return
	}
	fresh, err := d.store.All(ctx)
	if err != nil {
		return
	}
	live := make(map[string]bool, len(fresh))
	for _, w := range fresh {
		live[w.ID] = w.Enabled && len(w.Topics) > 0
	}
	for _, id := range orphans {
		if !live[id] {
			d.deleteConsumer(ctx, id)
		}
	}
}

// stopAll stops every runner (at shutdown).
func (d *Dispatcher) stopAll() {
	d.mu.Lock()
	rs := make([]*runner, 0, len(d.runners))
	for id, r := range d.runners {
		rs = append(rs, r)
		delete(d.runners, id)
	}
	d.mu.Unlock()
	for _, r := range rs {
		r.stop()
	}
}

// sweepLoop disables webhooks that stayed in error past DisableAfter even
// when no traffic is left to fail (their retries are parked in JetStream
// for up to BackoffMax). Every replica sweeps; the script re-checks, so
// a webhook is disabled once.
func (d *Dispatcher) sweepLoop(ctx context.Context) error {
	every := min(max(d.cfg.DisableAfter/20, 100*time.Millisecond), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		ids, err := d.store.DisableExpired(ctx, d.cfg.DisableAfter)
		if err != nil {
			continue // the registry loop reports Redis trouble
		}
		for _, id := range ids {
			d.stats.Disabled.Add(1)
			d.log.Warn().Str("webhook_id", id).Dur("duration", d.cfg.DisableAfter).
				Msg("webhook disabled: in error longer than disable-after")
		}
	}
}
