package dispatcher

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
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
}

// retryPlan is how retry runners read: the webhook's retry consumer, its
// events seen under their original subjects, a short idle pull so a
// drained consumer is noticed quickly.
func (k *retryKeeper) retryPlan() runPlan {
	return runPlan{
		stream:   k.cfg.retryStream(),
		consumer: retryConsumer,
		wrap:     func(m jetstream.Msg) jetstream.Msg { return retryMsg{m} },
		idleWait: 2 * time.Second,
		onIdle:   k.drained,
		stale:    staleRetry,
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
		if !k.fleet.has(w.ID) {
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
	for _, id := range k.fleet.ids() {
		if want[id] {
			continue
		}
		w, ok := k.idx.Get(id)
		if ok {
			k.fleet.run(ctx, *w) // the runner judges staleness by the current record
		}
		switch {
		case !ok || !w.Enabled:
			k.fleet.stop(id)
			k.drop(ctx, id, true)
		case k.empty(ctx, id):
			k.fleet.stop(id)
			k.drop(ctx, id, false)
		}
	}
}

// drop deletes webhook id's retry consumer and, with purge, whatever its
// retry subject still holds.
func (k *retryKeeper) drop(ctx context.Context, id string, purge bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := k.js.DeleteConsumer(ctx, k.cfg.retryStream(), retryConsumer(id)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		k.log.Warn().Err(err).Str("webhook_id", id).Msg("deleting retry consumer")
	}
	if !purge {
		return
	}
	st, err := k.js.Stream(ctx, k.cfg.retryStream())
	if err == nil {
		err = st.Purge(ctx, jetstream.WithPurgeSubject(retrySubject(id)))
	}
	if err != nil {
		k.log.Warn().Err(err).Str("webhook_id", id).Msg("dropping a disabled webhook's retries")
	}
}
