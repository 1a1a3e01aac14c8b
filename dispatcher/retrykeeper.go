package dispatcher

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// retryKeeper runs, on every replica, one runner per retrying webhook on
// its retry consumer (retry.go), like per-webhook consumption's
// reconciler but for the few webhooks that are failing. A webhook whose
// flag is cleared keeps its runner until its consumer has nothing left;
// a disabled or deleted one loses its consumer and retry subject (a
// re-enable delivers only new events).
type retryKeeper struct {
	cfg   Config
	js    jetstream.JetStream
	idx   *index
	fleet *fleet // runs with the retry plan
	flags retryFlagger
	log   zerolog.Logger

	missing sync.Map  // webhook id -> true: its runner found no consumer
	swept   time.Time // last sweep of the retry subjects
}

// retrySweep is how often the keeper lists the retry subjects that hold
// events, to give every one of them a flag and a consumer: a safety net
// for a flag that could not be set, or a consumer deleted as another
// replica diverted.
const retrySweep = 10 * time.Second

// lost is the retry runners' heal: webhook id's consumer is gone (a
// NATS server back without its store, an operator), make it again.
func (k *retryKeeper) lost(id string) { k.missing.Store(id, true) }

// retryPlan is how retry runners read: the webhook's retry consumer, its
// events seen under their original subjects, a short idle pull so a
// drained consumer is noticed quickly.
func (k *retryKeeper) retryPlan() runPlan {
	return runPlan{
		stream:   k.cfg.retryStream(),
		consumer: retryConsumer,
		expand: func(id string, m jetstream.Msg, out []jetstream.Msg) []jetstream.Msg {
			return expandBundle(k.js, id, m, out)
		},
		events:    func(m jetstream.Msg) int { return int(bundleEvents(m.Subject())) },
		notBefore: notBefore,
		idleWait:  2 * time.Second,
		onIdle:    k.drained,
		stale: func(w subscriptions.Webhook, m jetstream.Msg) bool {
			if cur, ok := k.idx.Get(w.ID); ok && cur.ActiveSince.After(w.ActiveSince) {
				w.ActiveSince = cur.ActiveSince // a re-enable moves ActiveSince
			}
			return staleRetry(w, m)
		},
	}
}

// drained clears webhook id's retrying flag once its retry consumer has
// nothing pending or unacknowledged: its new events go through the
// partitions again.
func (k *retryKeeper) drained(ctx context.Context, id string) {
	if !k.empty(ctx, id) {
		return
	}
	if changed, err := k.flags.SetRetrying(ctx, id, false); err == nil && changed {
		k.log.Info().Str("webhook_id", id).Msg("webhook caught up: its events go through the partitions again")
	}
}

// empty reports whether webhook id's retry consumer has nothing left.
func (k *retryKeeper) empty(ctx context.Context, id string) bool {
	c, err := k.js.Consumer(ctx, k.cfg.retryStream(), retryConsumer(id))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return true
	}
	if err != nil {
		return false
	}
	info := c.CachedInfo()
	return info.NumPending == 0 && info.NumAckPending == 0
}

// Run reconciles every ReconcileInterval until ctx is done, then stops
// every retry runner and returns nil.
func (k *retryKeeper) Run(ctx context.Context) error {
	t := time.NewTicker(k.cfg.ReconcileInterval)
	defer t.Stop()
	defer k.fleet.stopAll()
	select {
	case <-k.idx.Loaded():
	case <-ctx.Done():
		return nil
	}
	for {
		k.tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (k *retryKeeper) tick(ctx context.Context) {
	want := make(map[string]bool)
	for _, w := range k.idx.retrying() {
		want[w.ID] = true
		_, missing := k.missing.LoadAndDelete(w.ID)
		if missing || !k.fleet.has(w.ID) {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := k.js.CreateOrUpdateConsumer(cctx, k.cfg.retryStream(), k.cfg.retryConsumerConfig(w.ID))
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					k.log.Warn().Err(err).Str("webhook_id", w.ID).Msg("retry consumer; retrying")
				}
				continue
			}
		}
		k.fleet.run(ctx, *w)
	}
	if time.Since(k.swept) > retrySweep {
		k.sweep(ctx)
		k.swept = time.Now()
	}
	// Runners to stop are stopped together, not one after another: a new
	// retrying webhook's runner must not wait behind many drained ones.
	var stop []string
	purge := make(map[string]uint64) // id -> purge below this sequence (0: all)
	next := uint64(0)                // the retry stream's next sequence, read once
	nextSeq := func() uint64 {       // and only when a disabled webhook needs it
		if next == 0 {
			if st, err := k.js.Stream(ctx, k.cfg.retryStream()); err == nil {
				next = st.CachedInfo().State.LastSeq + 1
			}
		}
		return next
	}
	for _, id := range k.fleet.ids() {
		if want[id] {
			continue
		}
		w, ok := k.idx.Get(id)
		if ok {
			k.fleet.run(ctx, *w) // the runner judges staleness by the current record
		}
		switch {
		case !ok:
			stop, purge[id] = append(stop, id), 0 // deleted: everything
		case !w.Enabled && nextSeq() > 0:
			// Disabled: what its subject holds now is dropped; events a
			// re-enable may already have sent there come later in the
			// stream and are kept.
			stop, purge[id] = append(stop, id), nextSeq()
		case k.empty(ctx, id):
			stop = append(stop, id)
		}
	}
	k.fleet.stopAllOf(stop)
	for _, id := range stop {
		below, ok := purge[id]
		k.drop(ctx, id, ok, below)
	}
}

// sweep gives every retry subject that holds events a flag (so that a
// consumer is made for it) when its webhook is enabled, and drops the
// subjects of webhooks that are gone.
func (k *retryKeeper) sweep(ctx context.Context) {
	st, err := k.js.Stream(ctx, k.cfg.retryStream())
	if err != nil {
		return
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(retryPrefix+".>"))
	if err != nil {
		return
	}
	seen := make(map[string]bool)
	for subject := range info.State.Subjects {
		id, _, _ := strings.Cut(strings.TrimPrefix(subject, retryPrefix+"."), ".")
		if seen[id] {
			continue
		}
		seen[id] = true
		w, ok := k.idx.Get(id)
		switch {
		case !ok:
			k.drop(ctx, id, true, 0) // deleted: nobody will ever want them
		case w.Enabled && !w.State.Retrying:
			if changed, err := k.flags.SetRetrying(ctx, id, true); err == nil && changed {
				k.log.Warn().Str("webhook_id", id).Msg("events waiting on a retry subject without a flag; retrying them")
			}
		}
	}
}

// drop deletes webhook id's retry consumer and, with purge, what its
// retry subject holds below sequence below (0: all of it).
func (k *retryKeeper) drop(ctx context.Context, id string, purge bool, below uint64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := k.js.DeleteConsumer(ctx, k.cfg.retryStream(), retryConsumer(id)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		k.log.Warn().Err(err).Str("webhook_id", id).Msg("deleting retry consumer")
	}
	if !purge {
		return
	}
	st, err := k.js.Stream(ctx, k.cfg.retryStream())
	for _, subject := range retryFilters(id) {
		if err != nil {
			break
		}
		opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSubject(subject)}
		if below > 0 {
			opts = append(opts, jetstream.WithPurgeSequence(below))
		}
		err = st.Purge(ctx, opts...)
	}
	if err != nil {
		k.log.Warn().Err(err).Str("webhook_id", id).Msg("dropping a disabled webhook's retries")
	}
}
