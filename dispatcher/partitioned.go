package dispatcher

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// partitionedStore is what partitioned consumption needs from the
// registry beyond Store: the change feed, the retrying flag and the
// partition leases (*subscriptions.Store implements it).
type partitionedStore interface {
	Store
	indexFeed
	retryFlagger
	partitionStore
}

// partitioned is partitioned consumption's parts, composed by Run.
type partitioned struct {
	idx    *index
	retry  *retrier
	hooks  *hooks
	parts  *partitions
	keeper *retryKeeper
	owner  *owner
	topics *topicNoter
	budget *semaphore.Weighted
}

func newPartitioned(cfg Config, js jetstream.JetStream, store Store, c *courier, rec *reconciler,
	log zerolog.Logger, stats *Stats) (*partitioned, error) {
	ps, ok := store.(partitionedStore)
	if !ok {
		return nil, errors.New("dispatcher: partitioned consumption needs a store with the change feed and partition leases")
	}
	// The byte budget is split: three quarters for the partitions, a
	// quarter for the retry runners, so slow webhooks' retries can never
	// starve the partitions of the others.
	partBudget := semaphore.NewWeighted(max(int64(cfg.BatchMaxBytes), cfg.MaxBufferedBytes*3/4))
	retryBudget := semaphore.NewWeighted(max(int64(cfg.BatchMaxBytes), cfg.MaxBufferedBytes/4))
	p := &partitioned{budget: partBudget}
	p.idx = newIndex(ps, cfg.DefaultAccount, log)
	adopt := cfg.AdoptRegistry
	p.idx.allow = func(ctx context.Context) (bool, error) {
		st, have, recorded, err := rec.checkEpoch(ctx, adopt)
		if err != nil {
			return false, err
		}
		rec.noteEpoch(st, have, recorded)
		adopt = false // adopting is a start-up decision
		return st == epochOK, nil
	}
	p.retry = newRetrier(cfg, js, ps, log)
	p.hooks = &hooks{cfg: cfg, slots: ps, courier: c, retry: p.retry, idx: p.idx, log: log, m: make(map[string]*hook)}
	p.topics = newTopicNoter(ps, log)
	p.parts = &partitions{cfg: cfg, js: js, streams: rec.streams, idx: p.idx, hooks: p.hooks, retry: p.retry, dead: c.dead,
		budget: partBudget, topics: p.topics, log: log, stats: stats, running: make(map[int]*partitionRun)}
	p.keeper = &retryKeeper{cfg: cfg, js: js, idx: p.idx, flags: ps, log: log}
	p.keeper.fleet = &fleet{cfg: cfg, plan: p.keeper.retryPlan(), js: js, slots: ps, courier: c, budget: retryBudget,
		log: log, stats: stats, heal: p.keeper.lost, runners: make(map[string]*runner)}
	p.owner = newOwner(ps, cfg.Partitions, log, p.parts.start, p.parts.stop)
	return p, nil
}

// run delivers until ctx is done; then it stops consuming, lets every
// delivery end, settles what was moved to retry subjects and returns.
func (p *partitioned) run(ctx context.Context, cfg Config, states stateStore, log zerolog.Logger, stats *Stats) error {
	retried := make(chan struct{})
	go func() {
		defer close(retried)
		p.retry.run()
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		<-gctx.Done()
		p.hooks.close() // at once: queued events go back, for the next owner
		return nil
	})
	g.Go(func() error { return p.idx.Run(gctx) })
	g.Go(func() error { return p.topics.Run(gctx) })
	g.Go(func() error { return p.keeper.Run(gctx) })
	g.Go(func() error { return p.owner.Run(gctx) })
	g.Go(func() error { return strays(gctx, cfg, p.parts.js, p.parts.dead, log) })
	g.Go(func() error { return sweep(gctx, cfg, states, log, stats) })
	err := g.Wait()
	// Shutdown order: the owner stopped the partitions (no new events);
	// queued and in-flight deliveries end (each bounded by
	// DeliveryTimeout); then what they moved to retry subjects is
	// settled, and only then the partition events are acknowledged.
	p.parts.stopAll()
	p.hooks.wait()
	p.keeper.fleet.stopAll()
	p.retry.close()
	<-retried
	return err
}

// activeWebhooks is what ActiveWebhooks reports under partitioned
// consumption: the enabled webhooks whose partition this replica owns.
// It scans the index (tens of ns a webhook), fine at scrape intervals.
func (p *partitioned) activeWebhooks(cfg Config) int {
	owned := make(map[int]bool)
	for _, k := range p.owner.owned() {
		owned[k] = true
	}
	return p.idx.countEnabled(func(account string) bool { return owned[partitionOf(account, cfg.Partitions)] })
}
