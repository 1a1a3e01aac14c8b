package dispatcher

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"

	"github.com/webhookd/webhookd/subscriptions"
)

// fleet is this replica's set of runners, one per webhook it delivers
// for, and what they share: the consumer handles' JetStream, the slots,
// the courier and the byte budget.
type fleet struct {
	cfg     Config
	plan    runPlan
	js      jetstream.JetStream
	slots   slotStore
	courier *courier
	budget  *semaphore.Weighted // bytes of fetched events held, across webhooks
	log     zerolog.Logger
	stats   *Stats
	heal    func(id string) // webhook id's consumer is missing: have it made again

	mu      sync.Mutex
	runners map[string]*runner
	wg      sync.WaitGroup // runners and their deliveries
}

// run starts w's runner, or gives a running one the newer record.
func (f *fleet) run(ctx context.Context, w subscriptions.Webhook) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.runners[w.ID]; ok {
		r.wh.Store(&w)
		return
	}
	r := &runner{
		cfg:     f.cfg,
		plan:    f.plan,
		js:      f.js,
		id:      w.ID,
		slots:   f.slots,
		courier: f.courier,
		budget:  f.budget,
		local:   semaphore.NewWeighted(int64(f.cfg.MaxInFlight)),
		stats:   f.stats,
		heal:    f.heal,
		log:     f.log.With().Str("webhook_id", w.ID).Logger(),
		wg:      &f.wg,
		done:    make(chan struct{}),
	}
	r.wh.Store(&w)
	f.runners[w.ID] = r
	r.start(ctx)
}

// stopAllOf stops the runners of ids at once and waits for them.
func (f *fleet) stopAllOf(ids []string) {
	f.mu.Lock()
	var stop []*runner
	for _, id := range ids {
		if r, ok := f.runners[id]; ok {
			stop = append(stop, r)
			delete(f.runners, id)
		}
	}
	f.mu.Unlock()
	for _, r := range stop {
		r.once.Do(func() { r.cancel() })
	}
	for _, r := range stop {
		<-r.done
	}
}

// has reports whether webhook id's runner runs.
func (f *fleet) has(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.runners[id]
	return ok
}

// ids lists the webhooks whose runners run.
func (f *fleet) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.runners))
	for id := range f.runners {
		out = append(out, id)
	}
	return out
}

// runPlan says which consumer a runner reads and how: a webhook's own
// consumer on the event stream (per-webhook consumption), or its retry
// consumer (partitioned consumption, retry.go).
type runPlan struct {
	stream   string
	consumer func(id string) string
	// expand, when set, appends to out the events that message m,
	// fetched for webhook id, carries.
	expand func(id string, m jetstream.Msg, out []jetstream.Msg) []jetstream.Msg
	// events, when set, is how many events a fetched message carries
	// (else one).
	events func(m jetstream.Msg) int
	// notBefore, when set, is when a fetched message may be delivered;
	// one fetched earlier is handed back until then.
	notBefore func(m jetstream.Msg) time.Time
	// idleWait is how long one pull waits for a first event.
	idleWait time.Duration
	// onIdle, when set, is called after a pull that found nothing.
	onIdle func(ctx context.Context, id string)
	// stale, when set, names fetched messages the webhook must not get
	// (they are acknowledged and dropped).
	stale func(w subscriptions.Webhook, m jetstream.Msg) bool
}

// eventsIn is how many events fetched message m carries.
func (p runPlan) eventsIn(m jetstream.Msg) int {
	if p.events == nil {
		return 1
	}
	return p.events(m)
}

// eventPlan is per-webhook consumption's plan.
func eventPlan(cfg Config) runPlan {
	return runPlan{stream: cfg.Stream, consumer: consumerName, idleWait: idleWait}
}

// stopExcept stops every runner whose webhook is not in keep and returns
// their ids.
func (f *fleet) stopExcept(keep map[string]subscriptions.Webhook) []string {
	f.mu.Lock()
	var stop []*runner
	for id, r := range f.runners {
		if _, ok := keep[id]; !ok {
			stop = append(stop, r)
			delete(f.runners, id)
		}
	}
	f.mu.Unlock()
	ids := make([]string, 0, len(stop))
	for _, r := range stop {
		r.stop()
		ids = append(ids, r.id)
	}
	return ids
}

// stopAll stops every runner and waits for their deliveries (shutdown).
func (f *fleet) stopAll() {
	f.stopExcept(nil)
	f.wg.Wait()
}

// size is the number of webhooks this replica delivers for.
func (f *fleet) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.runners)
}
