package dispatcher

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"strconv"
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
		Metadata: map[string]string{
			"webhookd_account": w.AccountID,
			metaActiveSince:    start.Format(time.RFC3339Nano),
			metaEndpoint:       endpointTag(w.EndpointURL),
		},
	}
}

// Consumer metadata keys: the webhook's start time (a reset consumer
// starts at a sequence, so its OptStartTime no longer says it) and a tag
// of its endpoint (to notice a new endpoint).
const (
	metaActiveSince = "webhookd_active_since"
	metaEndpoint    = "webhookd_endpoint"
)

// endpointTag identifies an endpoint URL without storing it: URLs may
// carry tokens, and consumer metadata is visible to NATS operators.
func endpointTag(url string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(url))
	return strconv.FormatUint(h.Sum64(), 36)
}

// activeSince is the start time a consumer was made for.
func activeSince(cfg jetstream.ConsumerConfig) (time.Time, bool) {
	if v, ok := cfg.Metadata[metaActiveSince]; ok {
		t, err := time.Parse(time.RFC3339Nano, v)
		return t, err == nil
	}
	if cfg.OptStartTime != nil {
		return *cfg.OptStartTime, true
	}
	return time.Time{}, false
}

// signature identifies what a consumer must look like; a change of start
// time needs a new consumer, a change of filters or endpoint an update
// (or, for a webhook in error, a reset: see reset).
func (r *reconciler) signature(w subscriptions.Webhook) string {
	return w.ActiveSince.UTC().Format(time.RFC3339Nano) + "|" + endpointTag(w.EndpointURL) + "|" +
		strings.Join(filterSubjects(w, r.cfg.DefaultAccount), ",")
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
	info := c.CachedInfo()
	cur := info.Config
	if since, ok := activeSince(cur); !ok || !since.Equal(*cfg.OptStartTime) {
		r.log.Info().Str("webhook_id", w.ID).Msg("delivery restarts: backlog before the re-enable dropped")
		if err := r.js.DeleteConsumer(ctx, r.cfg.Stream, cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		return r.create(ctx, cfg)
	}
	tag, tagged := cur.Metadata[metaEndpoint]
	if tagged && tag != cfg.Metadata[metaEndpoint] && !w.State.ErrorSince.IsZero() {
		return r.reset(ctx, w, cfg, info.AckFloor.Stream)
	}
	have := slices.Clone(cur.FilterSubjects)
	if len(have) == 0 && cur.FilterSubject != "" {
		have = []string{cur.FilterSubject}
	}
	slices.Sort(have)
	if !slices.Equal(have, cfg.FilterSubjects) || tag != cfg.Metadata[metaEndpoint] {
		// A consumer reset from a sequence keeps that start.
		cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = cur.DeliverPolicy, cur.OptStartTime, cur.OptStartSeq
		_, err = r.js.UpdateConsumer(ctx, r.cfg.Stream, cfg)
	}
	return err
}

// reset replaces the consumer of w, a webhook in error whose endpoint
// changed, by one that starts right after its acknowledged floor. The
// events parked for the old endpoint's backoff (NakWithDelay cannot be
// taken back) come again at once, so the new endpoint's first probe has
// them, not only new events. Events acknowledged out of order above the
// floor come again too: duplicates, which receivers dedupe.
func (r *reconciler) reset(ctx context.Context, w subscriptions.Webhook, cfg jetstream.ConsumerConfig, floor uint64) error {
	r.log.Info().Str("webhook_id", w.ID).Uint64("stream_seq", floor+1).
		Msg("new endpoint for a webhook in error: its parked events come again now")
	if err := r.js.DeleteConsumer(ctx, r.cfg.Stream, cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return err
	}
	if floor > 0 {
		cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, nil, floor+1
	}
	return r.create(ctx, cfg)
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
