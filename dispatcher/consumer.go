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

// consumerName is the durable consumer of a webhook. Names may not contain
// dots, so they are never derived from topics.
func consumerName(id string) string { return "wh_" + id }

// webhookOfConsumer is consumerName's inverse.
func webhookOfConsumer(name string) (string, bool) { return strings.CutPrefix(name, "wh_") }

// filterSubjects are the subjects a webhook's consumer reads: each topic
// for its own account, plus the bare topic when the webhook belongs to the
// default account.
func filterSubjects(w subscriptions.Webhook, defaultAccount string) []string {
	out := make([]string, 0, 2*len(w.Topics))
	for _, t := range w.Topics {
		out = append(out, t+"."+w.AccountID)
		if w.AccountID == defaultAccount {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// consumerConfig is the durable consumer of webhook w. It starts at
// w.ActiveSince, so a new or re-enabled webhook receives only events
// published after that instant and never a backlog from before.
func (r *reconciler) consumerConfig(w subscriptions.Webhook) jetstream.ConsumerConfig {
	start := w.ActiveSince.UTC()
	return jetstream.ConsumerConfig{
		Durable:        consumerName(w.ID),
		Description:    "webhookd webhook " + w.ID,
		FilterSubjects: filterSubjects(w, r.cfg.DefaultAccount),
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        r.cfg.ackWait(),
		// Nak'd messages still count toward MaxAckPending, so it sits well
		// above MaxInFlight full batches: a webhook's own parked retries
		// never starve its fresh traffic, yet a dead endpoint stops
		// pulling new events once this many are parked.
		MaxAckPending:   max(20_000, 3*r.cfg.MaxInFlight*r.cfg.BatchMaxEvents),
		MaxDeliver:      -1, // the disable rule, not a delivery count, ends retries
		MaxRequestBatch: r.cfg.BatchMaxEvents,
		Metadata:        map[string]string{"webhookd_account": w.AccountID},
	}
}

// signature identifies what a consumer must look like; a change of start
// time needs a new consumer, a change of filters only an update.
func (r *reconciler) signature(w subscriptions.Webhook) string {
	return w.ActiveSince.UTC().Format(time.RFC3339Nano) + "|" + strings.Join(filterSubjects(w, r.cfg.DefaultAccount), ",")
}

// ensureConsumer creates w's consumer, updates its filters, or replaces it
// when its start time changed (a re-enable: the backlog is dropped and
// delivery restarts at ActiveSince). Every replica may race here; the
// outcome is the same consumer.
func (r *reconciler) ensureConsumer(ctx context.Context, w subscriptions.Webhook) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg := r.consumerConfig(w)
	c, err := r.js.Consumer(ctx, r.cfg.Stream, cfg.Durable)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// The server lost the stream (restarted without its store, or an
		// operator deleted it): recreate it rather than stall forever.
		// Whatever it held is gone; events published from now on flow.
		r.log.Error().Str("stream", r.cfg.Stream).Msg("event stream missing on the NATS server; recreating it")
		if err := r.streams.create(ctx); err != nil {
			return err
		}
		c, err = r.js.Consumer(ctx, r.cfg.Stream, cfg.Durable)
	}
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return r.create(ctx, cfg)
	case err != nil:
		return err
	}
	cur := c.CachedInfo().Config
	if cur.OptStartTime == nil || !cur.OptStartTime.Equal(*cfg.OptStartTime) {
		r.log.Info().Str("webhook_id", w.ID).Msg("delivery restarts: backlog before the re-enable dropped")
		if err := r.js.DeleteConsumer(ctx, r.cfg.Stream, cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		return r.create(ctx, cfg)
	}
	have := slices.Clone(cur.FilterSubjects)
	if len(have) == 0 && cur.FilterSubject != "" {
		have = []string{cur.FilterSubject}
	}
	slices.Sort(have)
	if !slices.Equal(have, cfg.FilterSubjects) {
		_, err = r.js.UpdateConsumer(ctx, r.cfg.Stream, cfg)
	}
	return err
}

// create makes a consumer; another replica winning the race with the
// same configuration is success.
func (r *reconciler) create(ctx context.Context, cfg jetstream.ConsumerConfig) error {
	_, err := r.js.CreateConsumer(ctx, r.cfg.Stream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return nil
	}
	return err
}

// deleteConsumer drops a webhook's consumer and with it every pending and
// parked event: a disabled or deleted webhook has no backlog.
func (r *reconciler) deleteConsumer(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := r.js.DeleteConsumer(ctx, r.cfg.Stream, consumerName(id))
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		r.log.Error().Err(err).Str("webhook_id", id).Msg("deleting consumer")
		return
	}
	r.mu.Lock()
	delete(r.applied, id)
	r.mu.Unlock()
}
