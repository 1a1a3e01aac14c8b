package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/dispatcher/activity"
	"github.com/webhookd/webhookd/subscriptions"
)

// Replays (README, "Replay"). A replay is a record in Redis
// (subscriptions.Replay); every replica polls the running ones and one
// claims each with a lease (replayLease, renewed every third of it). The
// claimer reads the event stream with an ordered consumer filtered on the
// webhook's stored subjects, from the window's start (or after the
// replay's checkpoint when it resumes one whose replica died), and hands
// each batch to the courier exactly as live traffic: batcher.Pack, the
// signature, one request slot of the webhook's cross-replica semaphore
// per batch (so live and replay traffic together never exceed
// MaxInFlight). A batch is sent one at a time per replay; a failed
// request is recorded as the webhook's failure and its events are sent
// again once the semaphore allows (the webhook's backoff). A webhook
// disabled or deleted meanwhile ends the replay failed.

// Errors the API maps to statuses.
var (
	// ErrReplayWindow: the window starts before the oldest event the
	// stream still keeps.
	ErrReplayWindow = errors.New("dispatcher: the window starts before the oldest event the stream keeps")
	// ErrWebhookDisabled: the webhook is disabled; re-enable it first.
	ErrWebhookDisabled = errors.New("dispatcher: webhook is disabled")
	// ErrNoSlot: every request slot of the webhook stayed taken.
	ErrNoSlot = errors.New("dispatcher: every request slot of the webhook is in use")
	// ErrNotAvailable: the store lacks what replays and test sends need.
	ErrNotAvailable = errors.New("dispatcher: replays and test sends are not available with this store")
)

const (
	// replayLease is how long a replica holds a replay without renewing
	// it: a replica that dies has its replays resumed by another within
	// about this long.
	replayLease = 15 * time.Second
	// replayPoll is how often each replica looks for unclaimed replays.
	replayPoll = 500 * time.Millisecond
	// replayFetchWait bounds one fetch of the window; a fetch that finds
	// nothing ends the window.
	replayFetchWait = 2 * time.Second
)

// extraStore is what replays, test sends, delivery-state figures and
// operator events need from the registry; *subscriptions.Store has it.
type extraStore interface {
	Get(ctx context.Context, account, id string) (subscriptions.Webhook, error)
	CreateReplay(ctx context.Context, r subscriptions.Replay) (subscriptions.Replay, error)
	GetReplay(ctx context.Context, id, rid string) (subscriptions.Replay, error)
	ListReplays(ctx context.Context, id string) ([]subscriptions.Replay, error)
	CancelReplay(ctx context.Context, id, rid string) (subscriptions.Replay, error)
	FinishReplay(ctx context.Context, id, rid, holder string, state subscriptions.ReplayState, reason string) (bool, error)
	RunningReplays(ctx context.Context) ([]subscriptions.RunningReplay, error)
	ClaimReplay(ctx context.Context, id, rid, holder string, lease time.Duration) (held, running bool, err error)
	ReleaseReplay(ctx context.Context, id, rid, holder string) error
	ReplayProgress(ctx context.Context, r subscriptions.Replay, holder string) (bool, error)
	AcquireFreeSlot(ctx context.Context, id, holder string, max int, lease time.Duration) (bool, error)
	SlotsInUse(ctx context.Context, id string) (int, error)
	SetNotifier(fn subscriptions.Notifier)
	NoteErrorLevels(ctx context.Context, after time.Duration) error
}

// replayer runs the replays this replica claims.
type replayer struct {
	cfg     Config
	js      jetstream.JetStream
	store   extraStore
	courier *courier
	log     zerolog.Logger
	stats   *RecoveryStats
	holder  string // this replica, in replay leases

	mu     sync.Mutex
	active map[string]bool // replay ids running here
	wg     sync.WaitGroup
}

// Run claims and runs replays until ctx is done, then waits for the
// ones it runs to stop (each stops at its next batch and gives its lease
// up; another replica resumes it from its checkpoint).
func (r *replayer) Run(ctx context.Context) error {
	t := time.NewTicker(replayPoll)
	defer t.Stop()
	defer r.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		running, err := r.store.RunningReplays(ctx)
		if err != nil {
			continue // the reconciler reports Redis trouble
		}
		for _, rr := range running {
			r.mu.Lock()
			busy := r.active[rr.ReplayID]
			r.mu.Unlock()
			if busy {
				continue
			}
			held, _, err := r.store.ClaimReplay(ctx, rr.WebhookID, rr.ReplayID, r.holder, replayLease)
			if err != nil || !held {
				continue
			}
			r.mu.Lock()
			r.active[rr.ReplayID] = true
			r.mu.Unlock()
			r.wg.Add(1)
			go r.run(ctx, rr)
		}
	}
}

// errReplayEnded: the replay must end failed, for the reason given.
type errReplayEnded struct{ reason string }

func (e errReplayEnded) Error() string { return e.reason }

// errStopped: the replay was cancelled or its lease lost.
var errStopped = errors.New("replay stopped")

// run runs one claimed replay to its end, renewing the lease meanwhile.
func (r *replayer) run(ctx context.Context, rr subscriptions.RunningReplay) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.active, rr.ReplayID)
		r.mu.Unlock()
	}()
	r.stats.ReplaysRunning.Add(1)
	defer r.stats.ReplaysRunning.Add(-1)
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go r.keepLease(jctx, cancel, rr)

	log := r.log.With().Str("webhook_id", rr.WebhookID).Str("replay_id", rr.ReplayID).Logger()
	rep, err := r.store.GetReplay(jctx, rr.WebhookID, rr.ReplayID)
	if err == nil {
		err = r.replay(jctx, &rep)
	}
	state, reason := subscriptions.ReplayDone, ""
	var ended errReplayEnded
	switch {
	case errors.As(err, &ended):
		state, reason = subscriptions.ReplayFailed, ended.reason
	case ctx.Err() != nil:
		// Shutting down: give the lease up, so another replica resumes
		// the replay from its checkpoint now, not once the lease expires.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer rcancel()
		if err := r.store.ReleaseReplay(rctx, rr.WebhookID, rr.ReplayID, r.holder); err != nil {
			log.Debug().Err(err).Msg("releasing the replay's lease; another replica claims it once it expires")
		}
		return
	case jctx.Err() != nil, errors.Is(err, errStopped):
		// Cancelled or lease lost: whoever holds it next resumes it from
		// its checkpoint, or it has ended already.
		return
	case err != nil:
		log.Warn().Err(err).Msg("replay interrupted; retrying from its checkpoint")
		return // the lease runs out; a replica claims it again
	}
	done, err := r.store.FinishReplay(context.WithoutCancel(ctx), rr.WebhookID, rr.ReplayID, r.holder, state, reason)
	if err != nil || !done {
		return
	}
	ev := log.Info()
	if state == subscriptions.ReplayFailed {
		ev = log.Warn().Str("error", reason)
	}
	ev.Int64("events", rep.EventsSent).Str("state", string(state)).Msg("replay finished")
}

// keepLease renews the replay's lease until ctx is done; a replay that
// ended (cancelled) or whose lease another replica took is stopped.
func (r *replayer) keepLease(ctx context.Context, stop func(), rr subscriptions.RunningReplay) {
	t := time.NewTicker(replayLease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held, running, err := r.store.ClaimReplay(ctx, rr.WebhookID, rr.ReplayID, r.holder, replayLease)
		if err == nil && (!held || !running) {
			stop()
			return
		}
	}
}

// replay reads rep's window batch by batch and delivers it.
func (r *replayer) replay(ctx context.Context, rep *subscriptions.Replay) error {
	w, err := r.webhook(ctx, rep)
	if err != nil {
		return err
	}
	subjects := r.cfg.storedSubjects(w, rep.Topics)
	if len(subjects) == 0 {
		// An ordered consumer without a filter would read every
		// account's events: never.
		return errors.New("replay: no topics to read")
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: subjects}
	if rep.Checkpoint > 0 {
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, rep.Checkpoint+1
	} else {
		since := rep.Since
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := r.js.OrderedConsumer(ctx, r.cfg.Stream, occ)
	if err != nil {
		return fmt.Errorf("replay consumer: %w", err)
	}
	for {
		batch, last, done, err := r.collect(ctx, cons, rep.Until)
		if err != nil {
			return err
		}
		if len(batch) > 0 {
			rep.EventsFound += int64(len(batch))
			sent, err := r.deliver(ctx, rep, batch)
			rep.EventsSent += sent
			r.stats.EventsReplayed.Add(sent)
			if err != nil {
				return err
			}
		}
		if last > 0 {
			rep.Checkpoint = last
		}
		ok, err := r.store.ReplayProgress(ctx, *rep, r.holder)
		if err != nil {
			return err
		}
		if !ok {
			return errStopped
		}
		if done {
			return nil
		}
	}
}

// webhook is rep's webhook as it is now; disabled or deleted ends rep.
func (r *replayer) webhook(ctx context.Context, rep *subscriptions.Replay) (subscriptions.Webhook, error) {
	w, err := r.store.Get(ctx, rep.AccountID, rep.WebhookID)
	switch {
	case errors.Is(err, subscriptions.ErrNotFound):
		return w, errReplayEnded{"webhook deleted"}
	case err != nil:
		return w, err
	case !w.Enabled:
		return w, errReplayEnded{"webhook disabled while replaying"}
	}
	return w, nil
}

// collect fetches the next batch of the window: at most BatchMaxEvents
// events stored no later than until. last is the stream sequence of the
// last message read; done says the window has been read to its end.
func (r *replayer) collect(ctx context.Context, cons jetstream.Consumer, until time.Time) (batch []jetstream.Msg, last uint64, done bool, err error) {
	mb, err := cons.Fetch(r.cfg.BatchMaxEvents, jetstream.FetchMaxWait(replayFetchWait))
	if err != nil {
		return nil, 0, false, fmt.Errorf("replay fetch: %w", err)
	}
	n := 0
	for m := range mb.Messages() {
		n++
		md, err := m.Metadata()
		if err != nil || done {
			continue // drain the rest of the fetch
		}
		if md.Timestamp.After(until) {
			done = true
			continue
		}
		batch = append(batch, &replayMsg{Msg: m, subject: unpartition(m.Subject())})
		last = md.Sequence.Stream
		if md.NumPending == 0 {
			done = true
		}
	}
	if err := mb.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return nil, 0, false, fmt.Errorf("replay fetch: %w", err)
	}
	if ctx.Err() != nil {
		return nil, 0, false, ctx.Err()
	}
	return batch, last, done || n == 0, nil
}

// deliver sends batch to rep's webhook under one request slot at a time
// until every event is delivered or set aside; sent counts the
// delivered ones.
func (r *replayer) deliver(ctx context.Context, rep *subscriptions.Replay, batch []jetstream.Msg) (sent int64, err error) {
	pending := batch
	for len(pending) > 0 {
		w, err := r.webhook(ctx, rep)
		if err != nil {
			return sent, err
		}
		holder := uuid.NewString()
		if err := r.acquire(ctx, w.ID, holder); err != nil {
			return sent, err
		}
		for _, m := range pending {
			m.(*replayMsg).reset()
		}
		// A copy: the courier filters the undeliverable out of the slice
		// it is given in place, which would shift pending's events.
		r.courier.deliverAs(w, holder, slices.Clone(pending), activity.TriggerReplay)
		var left []jetstream.Msg
		for _, m := range pending {
			switch m.(*replayMsg).get() {
			case replayAcked:
				sent++
			case replaySetAside:
			default:
				left = append(left, m)
			}
		}
		pending = left
		if len(pending) > 0 && !sleep(ctx, jitter(r.cfg.BackoffBase)) {
			return sent, ctx.Err()
		}
	}
	return sent, nil
}

// acquire takes one of w's request slots, waiting as live traffic does
// (the webhook's backoff while it is in error); a disabled or deleted
// webhook ends the replay.
func (r *replayer) acquire(ctx context.Context, id, holder string) error {
	for {
		s, err := r.courier.slots.AcquireSlot(ctx, id, holder, r.cfg.MaxInFlight, r.cfg.Lease)
		switch {
		case err != nil:
			if !sleep(ctx, time.Second) {
				return ctx.Err()
			}
		case s.Gone:
			return errReplayEnded{"webhook disabled while replaying"}
		case s.Acquired:
			return nil
		default:
			if !sleep(ctx, jitter(s.RetryAfter)) {
				return ctx.Err()
			}
		}
	}
}

// storedSubjects are the subjects w's events of topics are stored under
// in the event stream: the consumer filters of per-webhook consumption,
// under partitioned consumption moved by the stream's subject transform
// (partitionTransform: three-token subjects gain wp.<k>., bare topics
// stay).
func (c Config) storedSubjects(w subscriptions.Webhook, topics []string) []string {
	if len(topics) == 0 {
		return nil // no topics, no subjects: never the whole stream
	}
	w.Topics = topics
	fs := filterSubjects(w, c.DefaultAccount)
	if c.Partitions == 0 {
		return fs
	}
	k := strconv.Itoa(partitionOf(w.AccountID, c.Partitions))
	for i, f := range fs {
		if strings.Count(f, ".") == topicTokens {
			fs[i] = partitionPrefix + "." + k + "." + f
		}
	}
	return fs
}

// replayResult is what the courier did with a replayed event.
type replayResult int

const (
	replayUnsettled replayResult = iota // handed back: send again
	replayAcked                         // delivered
	replaySetAside                      // dead-lettered (bad, too large, refused alone)
)

// replayMsg is an event read by a replay, seen by the courier as a
// message to settle: the ordered consumer needs no acknowledgements, so
// settling only records what became of it.
type replayMsg struct {
	jetstream.Msg
	subject string // as published (the partition prefix removed)

	mu     sync.Mutex
	result replayResult
}

var _ jetstream.Msg = (*replayMsg)(nil)

func (m *replayMsg) set(r replayResult) error {
	m.mu.Lock()
	if m.result == replayUnsettled {
		m.result = r
	}
	m.mu.Unlock()
	return nil
}

func (m *replayMsg) get() replayResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.result
}

func (m *replayMsg) reset() {
	m.mu.Lock()
	m.result = replayUnsettled
	m.mu.Unlock()
}

func (m *replayMsg) Subject() string                    { return m.subject }
func (m *replayMsg) Reply() string                      { return "" }
func (m *replayMsg) Ack() error                         { return m.set(replayAcked) }
func (m *replayMsg) DoubleAck(context.Context) error    { return m.Ack() }
func (m *replayMsg) Nak() error                         { return nil }
func (m *replayMsg) NakWithDelay(time.Duration) error   { return nil }
func (m *replayMsg) InProgress() error                  { return nil }
func (m *replayMsg) Term() error                        { return m.set(replaySetAside) }
func (m *replayMsg) TermWithReason(reason string) error { return m.Term() }
