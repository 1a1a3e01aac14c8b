package dispatcher

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// Retry subjects (partitioned consumption). A webhook whose request
// failed, that is backing off, or whose queue fell behind has its events
// republished, in bundles (bundle.go), on webhookd.retry.<webhook id>.<n>
// in the retry stream and
// acknowledged on its partition: its backlog leaves the partition, which
// goes on at full speed for every other webhook. While the webhook's
// retrying flag is set (subscriptions.Store.SetRetrying, shared through
// the change feed) every replica sends its new events there too, and one
// durable consumer per retrying webhook (rt_<id>) delivers them exactly
// as per-webhook consumption does: one probe at a time in error, the
// backoff, the disable rule. When that consumer has nothing left the flag
// is cleared and the consumer deleted. The retry stream is a work queue
// (the consumers' subjects are disjoint), so what was delivered is gone
// and a recreated consumer never resends it.

// retryPrefix is the subject prefix of retry subjects.
const retryPrefix = "webhookd.retry"

// Headers of a single retry copy (one event per message, on
// webhookd.retry.<webhook id>: what versions before bundles wrote, still
// read): its original subject, and when the event stream stored it (unix
// nanoseconds), so a webhook re-enabled since never gets it (a re-enable
// delivers only new events). A bundle keeps the same facts per event in
// its encoding.
const (
	headerOrigin   = "Webhookd-Subject"
	headerStoredAt = "Webhookd-Stored-At"
	// headerTries on a retry copy is how many requests carried the event
	// before it moved, so the attempt log keeps counting (record.go).
	headerTries = "Webhookd-Tries"
)

func retrySubject(id string) string  { return retryPrefix + "." + id }
func retryConsumer(id string) string { return "rt_" + id }
func (c Config) retryStream() string { return c.Stream + "_RETRY" }

// retryFlagger sets a webhook's retrying flag.
type retryFlagger interface {
	SetRetrying(ctx context.Context, id string, on bool) (bool, error)
}

// retrier moves shares to their webhook's retry subject.
type retrier struct {
	cfg   Config
	js    jetstream.JetStream
	flags retryFlagger
	log   zerolog.Logger

	work chan pendingDivert // published, waiting for the PubAck
	// window holds a token per bundle published and not yet settled: at
	// most divertWindow, below nats.go's own limit of async publishes in
	// flight (4,000), so a burst of diverts waits here (its pump holds its
	// events, within the byte budget) instead of stalling in the client
	// and being handed back whole.
	window chan struct{}
	warn   zerolog.Logger // log sampled: a failure may hit every event

	mu      sync.Mutex
	flagged map[string]time.Time // webhook id -> when its flag was last set
}

type pendingDivert struct {
	ss       []*share
	ack      jetstream.PubAckFuture
	deadline time.Time
}

func newRetrier(cfg Config, js jetstream.JetStream, flags retryFlagger, log zerolog.Logger) *retrier {
	return &retrier{cfg: cfg, js: js, flags: flags, log: log,
		work: make(chan pendingDivert, divertWindow), window: make(chan struct{}, divertWindow),
		warn:    log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Minute}),
		flagged: make(map[string]time.Time)}
}

// divert moves shares, each already claimed (share.once), to their
// webhooks' retry subjects in bundles (bundle.go); each share is settled
// when the retry stream has its bundle (or fails, handing the partition
// event back, if it cannot).
func (rt *retrier) divert(ss []*share) {
	for len(ss) > 0 {
		n := 1
		for n < len(ss) && ss[n].webhook == ss[0].webhook {
			n++
		}
		rt.divertOf(ss[0].webhook, ss[:n])
		ss = ss[n:]
	}
}

// divertOf diverts shares of webhook id.
func (rt *retrier) divertOf(id string, ss []*share) {
	if err := rt.flag(id); err != nil {
		// Without the flag no consumer would be made for the copy: hand
		// the events back instead.
		rt.warn.Warn().Err(err).Str("webhook_id", id).Msg("setting the retrying flag; events handed back")
		settleAll(ss, false)
		return
	}
	limit := rt.cfg.BatchMaxBytes
	if nc := rt.js.Conn(); nc != nil && nc.MaxPayload() > 0 {
		limit = min(limit, int(nc.MaxPayload()/8*7))
	}
	for len(ss) > 0 {
		evs := make([]bundled, 0, min(len(ss), rt.cfg.BatchMaxEvents))
		size := 0
		for len(evs) < len(ss) && len(evs) < rt.cfg.BatchMaxEvents {
			e := shareBundled(ss[len(evs)])
			add := bundledSize(e)
			if len(evs) > 0 && size+add > limit {
				break
			}
			size += add
			evs = append(evs, e)
		}
		rt.publish(id, ss[:len(evs):len(evs)], evs)
		ss = ss[len(evs):]
	}
}

// publish stores ss, whose bundled events are evs, as one bundle.
func (rt *retrier) publish(id string, ss []*share, evs []bundled) {
	keys := make([]string, len(ss))
	for i, s := range ss {
		keys[i] = shareKey(s)
	}
	m := bundleMsg(id, evs, keys)
	rt.window <- struct{}{}
	ack, err := rt.js.PublishMsgAsync(m)
	if err != nil {
		<-rt.window
		rt.warn.Warn().Err(err).Str("webhook_id", id).Int("events", len(ss)).Msg("moving events to their retry subject; handed back")
		settleAll(ss, false)
		return
	}
	rt.work <- pendingDivert{ss: ss, ack: ack, deadline: time.Now().Add(divertTimeout)}
}

func settleAll(ss []*share, ok bool) {
	for _, s := range ss {
		s.f.settle(ok)
	}
}

// divertTimeout bounds the wait for a retry copy's PubAck.
const divertTimeout = 10 * time.Second

// divertWindow is how many retry copies may wait for their PubAck.
const divertWindow = 2048

// flag makes sure the webhook's retrying flag is set before its events
// are copied to its retry subject, so that a consumer exists for them.
// It asks Redis at most once a second per webhook (one round trip);
// every replica that diverts keeps the flag set, and the keeper's sweep
// catches a copy that raced a drain.
func (rt *retrier) flag(id string) error {
	rt.mu.Lock()
	last, ok := rt.flagged[id]
	now := time.Now()
	if ok && now.Sub(last) < time.Second {
		rt.mu.Unlock()
		return nil
	}
	if len(rt.flagged) > 10_000 {
		clear(rt.flagged) // forget old webhooks; it is only a rate limit
	}
	rt.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	changed, err := rt.flags.SetRetrying(ctx, id, true)
	if err != nil {
		return err
	}
	rt.mu.Lock()
	rt.flagged[id] = now
	rt.mu.Unlock()
	if changed {
		rt.log.Info().Str("webhook_id", id).Msg("webhook retrying: its events wait on its retry subject")
	}
	return nil
}

// run settles diverted shares as their PubAcks arrive, until close is
// called and everything diverted before is settled.
func (rt *retrier) run() {
	// One timer for all: PubAcks come in publish order, and so do the
	// deadlines.
	t := time.NewTimer(divertTimeout)
	defer t.Stop()
	for p := range rt.work {
		t.Reset(time.Until(p.deadline))
		select {
		case <-p.ack.Ok():
			settleAll(p.ss, true)
		case err := <-p.ack.Err():
			rt.warn.Warn().Err(err).Str("webhook_id", p.ss[0].webhook).Int("events", len(p.ss)).
				Msg("moving events to their retry subject; handed back")
			settleAll(p.ss, false)
		case <-t.C:
			settleAll(p.ss, false) // NATS away: the partition events come again
		}
		<-rt.window
	}
}

// close ends run once it has settled what was diverted; nothing may be
// diverted after it.
func (rt *retrier) close() { close(rt.work) }

// retryMsg is a message of the retry stream, seen as its original event.
type retryMsg struct{ jetstream.Msg }

// Headers are the event's headers as published: Nats-Msg-Id is the
// producer's again (the retry stream's copy carries its own, for
// deduplicating diverts), so an event without data.id keeps its
// external_id.
func (m retryMsg) Headers() nats.Header {
	h := nats.Header{}
	for k, v := range m.Msg.Headers() {
		h[k] = v
	}
	h.Del(jetstream.MsgIDHeader)
	if id := h.Get(HeaderMsgID); id != "" {
		h.Set(jetstream.MsgIDHeader, id)
	}
	return h
}

// priorTries is how many requests carried the event before it moved to
// the retry subject.
func (m retryMsg) priorTries() uint64 {
	n, _ := strconv.ParseUint(m.Msg.Headers().Get(headerTries), 10, 64)
	return n
}

// Subject is the subject the event was first published on.
func (m retryMsg) Subject() string {
	if s := m.Headers().Get(headerOrigin); s != "" {
		return s
	}
	return m.Msg.Subject()
}

// staleRetry reports whether retried event m predates w's current
// activation: it was waiting when w was disabled, and w was enabled again.
func staleRetry(w subscriptions.Webhook, m jetstream.Msg) bool {
	if p, ok := m.(interface{ storedAt() time.Time }); ok {
		return p.storedAt().Before(w.ActiveSince)
	}
	ns, err := strconv.ParseInt(m.Headers().Get(headerStoredAt), 10, 64)
	return err == nil && time.Unix(0, ns).Before(w.ActiveSince)
}

// retryConsumerConfig is the consumer of webhook id's retry subject.
func (c Config) retryConsumerConfig(id string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:         retryConsumer(id),
		Description:     "webhookd retries of webhook " + id,
		FilterSubjects:  retryFilters(id),
		DeliverPolicy:   jetstream.DeliverAllPolicy,
		AckPolicy:       jetstream.AckExplicitPolicy,
		AckWait:         c.ackWait(),
		MaxAckPending:   max(20_000, 3*c.MaxInFlight*c.BatchMaxEvents),
		MaxDeliver:      -1,
		MaxRequestBatch: c.BatchMaxEvents,
	}
}

// retryStreamConfig is the retry stream: a work queue of every retrying
// webhook's events, kept as long as the event stream keeps events.
func (c Config) retryStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.retryStream(),
		Description: "webhookd events waiting for a retrying webhook (subject = webhookd.retry.<webhook id>)",
		Subjects:    []string{retryPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		MaxAge:      c.StreamMaxAge,
		Storage:     jetstream.FileStorage,
		Duplicates:  2 * time.Minute,
		Replicas:    c.Replicas,
	}
}
