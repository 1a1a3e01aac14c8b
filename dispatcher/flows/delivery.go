package flows

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/webhookd/webhookd/batcher/flowtmpl"
	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/dispatcher/activity"
	"github.com/webhookd/webhookd/subscriptions/flows"
)

// Store is what delivery needs from the flow store; *flows.Store
// implements it.
type Store interface {
	Rev(ctx context.Context) (int64, error)
	All(ctx context.Context) ([]flows.Flow, error)
	Acquire(ctx context.Context, action, holder string, max int, lease time.Duration) (bool, error)
	Release(ctx context.Context, action, holder string) error
	Record(ctx context.Context, action string, o flows.Outcome) error
	SkipUnsent(ctx context.Context, action string, retrying bool) error
	ActionExists(ctx context.Context, action string) (bool, error)
}

// Stats are delivery's counters since start.
type Stats struct {
	Triggered    atomic.Int64 // (event, action) pairs started
	Requests     atomic.Int64 // POSTs made
	Delivered    atomic.Int64
	Skipped      atomic.Int64
	Retries      atomic.Int64 // failures scheduled for a retry
	RenderErrors atomic.Int64 // bodies that did not render (skipped)
}

// Delivery consumes the event stream for flow webhooks.
type Delivery struct {
	cfg    Config
	js     jetstream.JetStream
	store  Store
	log    zerolog.Logger
	client *http.Client
	idx    *index
	stats  Stats

	renderLogged sync.Map // action id -> struct{}: its render error was logged
	storeFailing atomic.Bool
	consuming    atomic.Bool // the event consumer is being read

	// warn is log sampled, for failures that can hit every event (a
	// retry that cannot be written while NATS refuses).
	warn zerolog.Logger
}

// New returns flow delivery on js and store.
func New(cfg Config, js jetstream.JetStream, store Store, log zerolog.Logger) *Delivery {
	cfg = cfg.withDefaults()
	return &Delivery{cfg: cfg, js: js, store: store, log: log, client: newClient(cfg),
		idx:  newIndex(store, cfg.Limits, cfg.IndexPoll, log),
		warn: log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Minute})}
}

// Sends reports whether this replica's index has action id live: its
// flow's events are being delivered (for tests and operators).
func (d *Delivery) Sends(actionID string) bool {
	return d.idx.action(actionID) != nil && d.consuming.Load()
}

// Stats returns the live counters.
func (d *Delivery) Stats() *Stats { return &d.stats }

// Run delivers until ctx is done, then lets the requests in flight end
// (each within DeliveryTimeout) and returns nil.
func (d *Delivery) Run(ctx context.Context) error {
	retries, err := d.setup(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.idx.Run(gctx) })
	g.Go(func() error { return d.runRetries(gctx, retries) })
	g.Go(func() error { return d.runEvents(gctx) })
	return g.Wait()
}

// runEvents consumes the event stream while some action is live
// anywhere, and removes the consumer while none is, so that a deployment
// without live flows costs the server nothing per event. The consumer is
// made with DeliverNew each time: events stored while no flow was live
// trigger nothing. Replicas at different index revisions may disagree for
// one poll around the first flow going live or the last one stopping; a
// consumer deleted under a replica is made again by it.
func (d *Delivery) runEvents(ctx context.Context) error {
	failing := false
	for {
		if !d.idx.waitLive(ctx, true) {
			return nil
		}
		cons, err := d.eventConsumer(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !failing {
				failing = true
				d.log.Warn().Err(err).Msg("flow delivery: cannot create the event consumer; retrying")
			}
			sleepCtx(ctx, time.Second)
			continue
		}
		failing = false
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			d.idx.waitLive(cctx, false)
			cancel()
		}()
		d.consuming.Store(true)
		err = d.consume(cctx, cons, d.handleEvent)
		d.consuming.Store(false)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			sleepCtx(ctx, time.Second) // the consumer vanished or failed: make it again
			continue
		}
		if !d.idx.live() {
			dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
			err := d.js.DeleteConsumer(dctx, d.cfg.Stream, d.cfg.consumerName())
			dcancel()
			if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				d.log.Warn().Err(err).Msg("flow delivery: no live flow, but the event consumer could not be removed")
			}
		}
	}
}

// runRetries consumes the retry stream once the index has loaded (a
// retry read before would find no live action and be skipped); a
// consumer deleted from outside is made again.
func (d *Delivery) runRetries(ctx context.Context, cons jetstream.Consumer) error {
	select {
	case <-d.idx.ready:
	case <-ctx.Done():
		return nil
	}
	for {
		err := d.consume(ctx, cons, d.handleRetry)
		if ctx.Err() != nil {
			return nil
		}
		d.log.Warn().Err(err).Msg("flow delivery: the retry consumer failed; making it again")
		sleepCtx(ctx, time.Second)
		if cons, err = d.setup(ctx); err != nil {
			return nil // ctx ended
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// eventConsumer makes the event consumer exist. New events only: a first
// start does not run flows over the stream's history. MaxAckPending
// bounds the events in work across all replicas.
func (d *Delivery) eventConsumer(ctx context.Context) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cons, err := d.js.CreateOrUpdateConsumer(ctx, d.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       d.cfg.consumerName(),
		Description:   "webhookd flow webhooks: every event, shared by all replicas, while a flow is live",
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.ackWait(),
		MaxAckPending: 4096,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("flows consumer: %w", err)
	}
	return cons, nil
}

// setup waits for the event stream (the dispatcher creates it), then
// makes the retry stream and its consumer exist.
func (d *Delivery) setup(ctx context.Context) (retries jetstream.Consumer, err error) {
	delay := 100 * time.Millisecond
	for {
		retries, err = d.ensure(ctx)
		if err == nil {
			return retries, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) && delay >= 5*time.Second {
			d.log.Warn().Err(err).Msg("flow delivery: setting up the retry stream; retrying")
		}
		sleepCtx(ctx, delay)
		delay = min(2*delay, 5*time.Second)
	}
}

func (d *Delivery) ensure(ctx context.Context) (retries jetstream.Consumer, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := d.js.Stream(ctx, d.cfg.Stream); err != nil {
		return nil, err
	}
	cfg := jetstream.StreamConfig{
		Name:        d.cfg.retryStream(),
		Description: "webhookd flow webhook retries (one message per event and action waiting to retry)",
		Subjects:    []string{retrySubjectPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		MaxAge:      48 * time.Hour,
		Storage:     jetstream.FileStorage,
		Duplicates:  2 * time.Minute,
		Replicas:    d.cfg.Replicas,
	}
	if _, err := d.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	// Every waiting retry is an unacknowledged message (NakWithDelay), so
	// MaxAckPending is the number of events that can wait at once;
	// beyond it new retries wait in the stream, later than scheduled.
	retries, err = d.js.CreateOrUpdateConsumer(ctx, cfg.Name, jetstream.ConsumerConfig{
		Durable:       retryConsumerName,
		Description:   "webhookd flow webhook retries",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.ackWait(),
		MaxAckPending: 100_000,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("flows retry consumer: %w", err)
	}
	return retries, nil
}

// ackWait covers one event's work: a slot wait and a request per action
// (they run concurrently), with room to spare.
func (d *Delivery) ackWait() time.Duration { return 3*d.cfg.DeliveryTimeout + 10*time.Second }

// consume runs handle on every message of cons, at most Workers at once,
// until ctx is done; then it waits for the handlers.
func (d *Delivery) consume(ctx context.Context, cons jetstream.Consumer, handle func(context.Context, jetstream.Msg)) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(d.cfg.Workers))
	if err != nil {
		return fmt.Errorf("flows: consume: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	// Handlers outlive ctx: a request in flight ends on its own deadline.
	hctx := context.WithoutCancel(ctx)
	sem := make(chan struct{}, d.cfg.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	failing := false
	for {
		m, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		if err != nil {
			if !failing {
				failing = true
				d.log.Warn().Err(err).Msg("flow delivery: reading the stream")
			}
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		failing = false
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			handle(hctx, m)
		})
	}
}

// handleEvent runs every live action the event triggers, then
// acknowledges it. An event that cannot trigger anything (no live action
// of its account on its topic, and none on a metric id) costs one subject
// parse and two map lookups; only the others are parsed.
func (d *Delivery) handleEvent(ctx context.Context, m jetstream.Msg) {
	subject := dispatcher.EventSubject(m.Subject())
	topic, account, err := dispatcher.ParseSubject(subject, d.cfg.DefaultAccount)
	if err != nil || !d.idx.mayTrigger(account, topic) {
		_ = m.Ack()
		return
	}
	ev, err := flowtmpl.ParseEvent(m.Data())
	if err != nil { // the system webhooks' side dead-letters it
		_ = m.Ack()
		return
	}
	meta, err := m.Metadata()
	if err != nil {
		_ = m.Ack()
		return
	}
	targets := d.idx.lookup(account, topic, ev.MetricID)
	var wg sync.WaitGroup
	var requeue atomic.Bool
	for _, l := range targets {
		if meta.Timestamp.Before(l.flow.Created) {
			continue // stored before the flow existed
		}
		wg.Go(func() {
			d.stats.Triggered.Add(1)
			j := job{l: l, ev: ev, raw: m.Data(), subject: subject, seq: meta.Sequence.Stream, attempt: 1, first: time.Now()}
			if err := d.settle(ctx, j, d.run(ctx, j)); err != nil {
				requeue.Store(true)
			}
		})
	}
	wg.Wait()
	if requeue.Load() {
		// A retry could not be written: the whole event comes back (its
		// delivered actions may then send twice: at least once).
		_ = m.NakWithDelay(time.Second)
		return
	}
	_ = m.Ack()
}

// job is one (triggering event, action) and its request number.
type job struct {
	l       *live
	ev      *flowtmpl.Event
	raw     []byte
	subject string
	seq     uint64 // the event's stream sequence
	attempt int    // this request's number, 1-based
	first   time.Time
}

// next is what follows a run: nothing, or the job again at a time.
type next struct {
	again   bool
	at      time.Time
	attempt int
}

// run makes one request of j (or none, when the body does not render or
// no slot is free) and records it.
func (d *Delivery) run(ctx context.Context, j job) next {
	a := j.l.action
	body, err := j.l.render(j.ev, d.cfg.Organization(j.l.flow.AccountID))
	if err != nil {
		d.renderFailed(ctx, j, err)
		return next{}
	}
	holder := uuid.NewString()
	if !d.acquire(ctx, a.ID, holder) {
		// Every slot of the action is busy: the job waits on the retry
		// stream, not in a worker, and this is not an attempt.
		return next{again: true, at: time.Now().Add(time.Second), attempt: j.attempt}
	}
	start := time.Now()
	d.stats.Requests.Add(1)
	r := d.post(ctx, j.l, body)
	_ = d.store.Release(ctx, a.ID, holder) // else the lease expires
	now := time.Now()

	att := activity.Attempt{
		ID: uuidV7(), AccountID: j.l.flow.AccountID, WebhookID: a.ID, FlowID: j.l.flow.ID, ProfileID: j.ev.ProfileID,
		StartedAt: start, Duration: now.Sub(start), Trigger: activity.TriggerLive, Status: r.status,
		ErrorClass: r.class, Error: r.err, ResponseExcerpt: scrub(r.excerpt, a.Message.Headers), Events: 1, Bytes: len(body),
		Attempt: j.attempt, ExternalIDs: []string{j.ev.ID}, Email: j.ev.Email, FirstAt: j.first,
	}
	if j.attempt > 1 {
		att.Trigger = activity.TriggerRetry
	}
	retrying := j.attempt > 1
	var out next
	var o flows.Outcome
	switch r.verdict {
	case vDelivered:
		att.Outcome = activity.Delivered
		o = pick(retrying, flows.RetryDelivered, flows.Delivered)
		d.stats.Delivered.Add(1)
	case vSkip:
		att.Outcome = activity.Failed
		o = pick(retrying, flows.RetrySkipped, flows.Skipped)
		d.stats.Skipped.Add(1)
	case vRetry:
		att.Outcome = activity.Failed
		if delay, ok := d.cfg.retryDelay(j.attempt, r.retryAfter, j.first, now); ok {
			out = next{again: true, at: now.Add(delay), attempt: j.attempt + 1}
			att.NextAttemptAt = out.at
			o = pick(retrying, flows.RetryAgain, flows.WillRetry)
			d.stats.Retries.Add(1)
		} else {
			att.Error += fmt.Sprintf("; skipped after %d retries", MaxRetries)
			att.Exhausted = true
			o = pick(retrying, flows.RetrySkipped, flows.Skipped)
			d.stats.Skipped.Add(1)
		}
	}
	d.cfg.Activity.Record(att)
	d.noteStore(d.store.Record(ctx, a.ID, o))
	return out
}

// scrub replaces, in a response excerpt, every header value of the
// action (its secrets: a receiver may echo them) with [redacted].
func scrub(excerpt string, headers map[string]string) string {
	for _, v := range headers {
		if len(v) >= 4 {
			excerpt = strings.ReplaceAll(excerpt, v, "[redacted]")
		}
	}
	return excerpt
}

func pick(retrying bool, ifRetry, ifFirst flows.Outcome) flows.Outcome {
	if retrying {
		return ifRetry
	}
	return ifFirst
}

// render is the action's body for ev.
func (l *live) render(ev *flowtmpl.Event, org flowtmpl.Organization) ([]byte, error) {
	if l.tmplErr != nil {
		return nil, l.tmplErr
	}
	return l.tmpl.RenderJSON(ev.Context(org))
}

// renderFailed skips j: counted, recorded in the attempt log as a
// render_error attempt that made no request (so the action's activity
// shows the event skipped, with the reason), and logged once per action
// (a template that fails for one event usually fails for many).
func (d *Delivery) renderFailed(ctx context.Context, j job, err error) {
	d.stats.RenderErrors.Add(1)
	d.stats.Skipped.Add(1)
	d.recordUnsent(j.l.flow.AccountID, j.l.flow.ID, j.l.action.ID, j.ev, j.attempt, j.first,
		activity.ClassRender, shorten(err.Error(), maxReasonLen))
	d.noteStore(d.store.SkipUnsent(ctx, j.l.action.ID, j.attempt > 1))
	if _, seen := d.renderLogged.LoadOrStore(j.l.action.ID, struct{}{}); !seen {
		d.log.Warn().Str("flow_id", j.l.flow.ID).Str("action_id", j.l.action.ID).Str("account_id", j.l.flow.AccountID).
			Str("reason", err.Error()).Msg("flow webhook body did not render; its events are skipped (logged once per action)")
	}
}

// maxReasonLen bounds the reason a render error stores: a template's
// error names its line and the construct, well within it.
const maxReasonLen = 300

// recordUnsent records an (event, action) skipped without a request:
// Status 0, Duration 0, outcome failed, the class saying why.
func (d *Delivery) recordUnsent(account, flow, action string, ev *flowtmpl.Event, attempt int, first time.Time, class activity.ErrorClass, reason string) {
	trigger := activity.TriggerLive
	if attempt > 1 {
		trigger = activity.TriggerRetry
	}
	d.cfg.Activity.Record(activity.Attempt{
		ID: uuidV7(), AccountID: account, WebhookID: action, FlowID: flow, ProfileID: ev.ProfileID, Email: ev.Email,
		StartedAt: time.Now(), Trigger: trigger, Outcome: activity.Failed, ErrorClass: class, Error: reason,
		Events: 1, Attempt: attempt, ExternalIDs: []string{ev.ID}, FirstAt: first,
	})
}

// shorten cuts s to at most n bytes, on a rune boundary.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// acquire takes one of the action's request slots, polling for up to a
// second. A Redis error counts as no slot (the job waits and retries).
func (d *Delivery) acquire(ctx context.Context, action, holder string) bool {
	deadline := time.Now().Add(time.Second)
	for {
		ok, err := d.store.Acquire(ctx, action, holder, d.cfg.MaxInFlight, d.cfg.Lease)
		d.noteStore(err)
		if ok {
			return true
		}
		if err != nil || time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Duration(15+rand.IntN(20)) * time.Millisecond)
	}
}

// noteStore logs once when the flow store starts failing, once when it
// works again.
func (d *Delivery) noteStore(err error) {
	switch {
	case err != nil && !d.storeFailing.Swap(true):
		d.log.Warn().Err(err).Msg("flow delivery: redis unavailable; requests wait, counters may miss updates")
	case err == nil && d.storeFailing.Swap(false):
		d.log.Info().Msg("flow delivery: redis available again")
	}
}

func uuidV7() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}
