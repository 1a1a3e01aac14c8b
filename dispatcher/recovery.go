package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/webhookd/webhookd/subscriptions"
)

// RecoveryStats count replays, test sends and operator events on this
// replica, for metrics.
type RecoveryStats struct {
	ReplaysRunning atomic.Int64 // replays this replica runs now
	EventsReplayed atomic.Int64 // events a replay delivered
	TestSends      atomic.Int64 // test sends made
	OpsSent        atomic.Int64 // operator events published on NATS
	OpsPosted      atomic.Int64 // operator events POSTed to --ops-url
	OpsFailed      atomic.Int64 // operator events dropped or not sent (NATS or --ops-url)
}

// extras are the parts beyond delivery: replays, test sends, operator
// events and the delivery-state figures. They need an extraStore; with
// another store they are off (ErrNotAvailable).
type extras struct {
	cfg     Config
	js      jetstream.JetStream
	store   extraStore
	courier *courier
	replay  *replayer
	ops     *opsPublisher
	stats   *RecoveryStats
}

func newExtras(cfg Config, js jetstream.JetStream, store Store, c *courier, log zerolog.Logger) *extras {
	es, ok := store.(extraStore)
	if !ok {
		return nil
	}
	stats := new(RecoveryStats)
	x := &extras{cfg: cfg, js: js, store: es, courier: c, stats: stats}
	x.replay = &replayer{cfg: cfg, js: js, store: es, courier: c, log: log, stats: stats,
		holder: uuid.NewString(), active: make(map[string]bool)}
	x.ops = newOpsPublisher(cfg, js, log, stats)
	es.SetNotifier(x.ops.notify)
	return x
}

// run runs the replayer, the operator event publisher and the error
// level sweep until ctx is done.
func (x *extras) run(ctx context.Context) error {
	if x == nil {
		<-ctx.Done()
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return x.replay.Run(gctx) })
	g.Go(func() error { return x.ops.Run(gctx) })
	g.Go(func() error { return x.levels(gctx) })
	return g.Wait()
}

// levels reports error_50 and error_90 of webhooks whose retries are
// parked too far apart for a failure to notice: every replica looks, the
// script reports each crossing once. A fiftieth of DisableAfter (between
// 50 ms and 10 s) keeps the report close to the crossing.
func (x *extras) levels(ctx context.Context) error {
	t := time.NewTicker(min(max(x.cfg.DisableAfter/50, 50*time.Millisecond), 10*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		_ = x.store.NoteErrorLevels(ctx, x.cfg.DisableAfter) // the reconciler reports Redis trouble
	}
}

// RecoveryStats returns the replay, test send and operator event
// counters (zero values when the store does not support them).
func (d *Dispatcher) RecoveryStats() *RecoveryStats {
	if d.ext == nil {
		return new(RecoveryStats)
	}
	return d.ext.stats
}

// StartReplay starts a replay of w's events of topics stored between
// since and until. The caller validated the window and topics; it
// answers ErrWebhookDisabled for a disabled webhook and ErrReplayWindow
// when the stream no longer keeps the window's start.
func (d *Dispatcher) StartReplay(ctx context.Context, w subscriptions.Webhook, since, until time.Time, topics []string) (subscriptions.Replay, error) {
	x := d.ext
	if x == nil {
		return subscriptions.Replay{}, ErrNotAvailable
	}
	if !w.Enabled {
		return subscriptions.Replay{}, ErrWebhookDisabled
	}
	if len(topics) == 0 {
		topics = w.Topics
	}
	st, err := x.js.Stream(ctx, d.cfg.Stream)
	if err != nil {
		return subscriptions.Replay{}, fmt.Errorf("replay: event stream: %w", err)
	}
	if s := st.CachedInfo().State; windowLost(s, since) {
		return subscriptions.Replay{}, fmt.Errorf("%w (oldest kept: %s)", ErrReplayWindow, s.FirstTime.UTC().Format(time.RFC3339))
	}
	return x.store.CreateReplay(ctx, subscriptions.Replay{
		WebhookID: w.ID, AccountID: w.AccountID, Since: since, Until: until, Topics: topics,
	})
}

// windowLost reports whether the stream dropped events stored at or
// after since: it has discarded messages (its first sequence is past 1)
// and since is before the oldest one kept (or, with none kept, before
// the last one stored).
func windowLost(s jetstream.StreamState, since time.Time) bool {
	if s.FirstSeq <= 1 {
		return false
	}
	oldest := s.FirstTime
	if s.Msgs == 0 {
		oldest = s.LastTime
	}
	return since.Before(oldest)
}

// Replays lists w's replays, newest first.
func (d *Dispatcher) Replays(ctx context.Context, w subscriptions.Webhook) ([]subscriptions.Replay, error) {
	if d.ext == nil {
		return nil, ErrNotAvailable
	}
	return d.ext.store.ListReplays(ctx, w.ID)
}

// Replay returns w's replay rid (subscriptions.ErrReplayNotFound).
func (d *Dispatcher) Replay(ctx context.Context, w subscriptions.Webhook, rid string) (subscriptions.Replay, error) {
	if d.ext == nil {
		return subscriptions.Replay{}, ErrNotAvailable
	}
	return d.ext.store.GetReplay(ctx, w.ID, rid)
}

// CancelReplay cancels w's replay rid if it is running and returns it.
func (d *Dispatcher) CancelReplay(ctx context.Context, w subscriptions.Webhook, rid string) (subscriptions.Replay, error) {
	if d.ext == nil {
		return subscriptions.Replay{}, ErrNotAvailable
	}
	return d.ext.store.CancelReplay(ctx, w.ID, rid)
}

// InFlight is how many requests to w run now, on every replica: the
// unexpired leases of its semaphore.
func (d *Dispatcher) InFlight(ctx context.Context, w subscriptions.Webhook) (int, error) {
	if d.ext == nil {
		return 0, ErrNotAvailable
	}
	return d.ext.store.SlotsInUse(ctx, w.ID)
}

// Backlog is how many events wait for w (README, "Delivery state"):
//
//   - per-webhook consumption: its consumer's unread events plus those
//     fetched and not yet acknowledged (NumPending + NumAckPending, failed
//     batches waiting for their backoff included);
//   - partitioned consumption: the events on its retry subject (each is
//     removed once delivered: a work queue) plus its account's events of
//     its topics stored after its partition's acknowledgement floor. The
//     second part is an upper bound: events past the floor that this
//     webhook already settled while another webhook of the partition had
//     not yet are counted too.
//
// A disabled webhook has no backlog: its events are dropped.
func (d *Dispatcher) Backlog(ctx context.Context, w subscriptions.Webhook) (int64, error) {
	x := d.ext
	if x == nil {
		return 0, ErrNotAvailable
	}
	if !w.Enabled {
		return 0, nil
	}
	if d.cfg.Partitions == 0 {
		c, err := x.js.Consumer(ctx, d.cfg.Stream, consumerName(w.ID))
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("backlog: %w", err)
		}
		info := c.CachedInfo()
		return int64(info.NumPending) + int64(info.NumAckPending), nil
	}
	retried, err := x.retried(ctx, w.ID)
	if err != nil {
		return 0, err
	}
	queued, err := x.pastFloor(ctx, w)
	if err != nil {
		return 0, err
	}
	return retried + queued, nil
}

// retried counts the events on w's retry subjects: a bundle's subject
// says how many it holds (bundle.go).
func (x *extras) retried(ctx context.Context, id string) (int64, error) {
	st, err := x.js.Stream(ctx, x.cfg.retryStream())
	if err != nil {
		return 0, fmt.Errorf("backlog: retry stream: %w", err)
	}
	var n int64
	for _, filter := range retryFilters(id) {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			return 0, fmt.Errorf("backlog: retry stream: %w", err)
		}
		for subject, msgs := range info.State.Subjects {
			n += int64(msgs) * bundleEvents(subject)
		}
	}
	return n, nil
}

// pastFloor counts w's events stored after its partition consumer's
// acknowledgement floor, with a short-lived consumer that only counts.
func (x *extras) pastFloor(ctx context.Context, w subscriptions.Webhook) (int64, error) {
	pc, err := x.js.Consumer(ctx, x.cfg.Stream, partitionConsumer(partitionOf(w.AccountID, x.cfg.Partitions)))
	if err != nil {
		return 0, fmt.Errorf("backlog: partition consumer: %w", err)
	}
	info := pc.CachedInfo()
	if info.NumPending == 0 && info.NumAckPending == 0 {
		return 0, nil
	}
	c, err := x.js.CreateConsumer(ctx, x.cfg.Stream, jetstream.ConsumerConfig{
		Description:       "webhookd backlog count of webhook " + w.ID,
		FilterSubjects:    x.cfg.storedSubjects(w, w.Topics),
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       info.AckFloor.Stream + 1,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 10 * time.Second,
		MemoryStorage:     true,
	})
	if err != nil {
		return 0, fmt.Errorf("backlog: counting consumer: %w", err)
	}
	n := int64(c.CachedInfo().NumPending)
	_ = x.js.DeleteConsumer(context.WithoutCancel(ctx), x.cfg.Stream, c.CachedInfo().Name)
	return n, nil
}
