package dispatcher

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"

	"github.com/webhookd/webhookd/subscriptions"
)

// stuckFeed is an indexFeed whose Changes reads block (until release or
// their context ends) or fail with err.
type stuckFeed struct {
	err     error
	entered chan struct{} // closed when a blocking read starts
	gate    chan struct{}
	in, out sync.Once
}

func newStuckFeed(t *testing.T) *stuckFeed {
	f := &stuckFeed{entered: make(chan struct{}), gate: make(chan struct{})}
	t.Cleanup(f.release)
	return f
}

func (f *stuckFeed) release() { f.out.Do(func() { close(f.gate) }) }

func (f *stuckFeed) All(context.Context) ([]subscriptions.Webhook, error) { return nil, nil }
func (f *stuckFeed) ChangesHead(context.Context) (string, error)          { return "0-0", nil }

func (f *stuckFeed) Changes(ctx context.Context, _ string, _ int, _ time.Duration) ([]subscriptions.Change, string, error) {
	if f.err != nil {
		return nil, "", f.err
	}
	f.in.Do(func() { close(f.entered) })
	select {
	case <-f.gate:
		return nil, "0-0", nil
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
}

func (f *stuckFeed) Lookup(context.Context, string) (subscriptions.Webhook, error) {
	return subscriptions.Webhook{}, subscriptions.ErrNotFound
}

// following is an index on f that follows it from a cursor (as Run
// leaves it), without Run.
func following(f indexFeed) *index {
	x := newIndex(f, "default", zerolog.Nop())
	cursor := "0-0"
	x.pos.Store(&cursor)
	return x
}

// A sync waiting for another one to end gives up when its context ends
// (a stopped partition must not wait for a hung Redis read); before, it
// waited on a mutex whatever its context.
func TestSyncAfterGivesUpWithContext(t *testing.T) {
	f := newStuckFeed(t)
	x := following(f)
	first := make(chan error, 1)
	go func() { first <- x.syncAfter(context.Background(), time.Now()) }()
	select {
	case <-f.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the first sync did not read the feed within 5s")
	}
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() { second <- x.syncAfter(ctx, time.Now()) }()
	cancel()
	select {
	case err := <-second:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("syncAfter with its context ended = %v, want context.Canceled", err)
		}
	case <-time.After(3 * time.Second):
		t.Error("syncAfter did not return within 3s of its context ending while another sync held the feed")
	}
	f.release()
	if err := <-first; err != nil {
		t.Errorf("the first sync = %v, want nil", err)
	}
}

// An index that has no feed cursor yet (Run has not loaded it) cannot
// tell whether it is fresh: syncAfter says so instead of reporting
// success.
func TestSyncAfterNotFollowing(t *testing.T) {
	x := newIndex(newStuckFeed(t), "default", zerolog.Nop())
	if err := x.syncAfter(context.Background(), time.Now()); err == nil {
		t.Error("syncAfter on an index without a cursor = nil, want an error")
	}
}

// When the index cannot be synced before routing (Redis away), the
// partition's batch is handed back rather than routed on an old view of
// the registry: nothing reaches the webhook, the events come again, and
// the bytes held go back to the budget.
func TestCycleHandsBackWhenSyncFails(t *testing.T) {
	e := newPfixEnv(t, Config{BatchLinger: 10 * time.Millisecond})
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	x := following(&stuckFeed{err: errors.New("redis away")})
	x.apply(e.w.ID, &e.w)
	hs := newTestHooks(t, e, &fakeStore{}, rt, lookup{e.w.ID: &e.w})
	store := &fakeStore{}
	stats := new(Stats)
	budget := semaphore.NewWeighted(int64(e.cfg.BatchMaxBytes))
	ps := &partitions{cfg: e.cfg, js: e.js, idx: x, hooks: hs, retry: rt,
		dead:   &deadLetterer{prefix: e.cfg.DeadLetter, js: e.js, log: zerolog.Nop(), stats: stats},
		budget: budget, topics: newTopicNoter(store, zerolog.Nop()), log: zerolog.Nop(), stats: stats,
		running: make(map[int]*partitionRun)}
	e.publish("ev00", nil)
	e.publish("ev01", nil)
	if err := ps.cycle(context.Background(), e.part); err == nil {
		t.Error("cycle with the index sync failing = nil, want an error")
	}
	if !budget.TryAcquire(int64(e.cfg.BatchMaxBytes)) || stats.BufferedBytes.Load() != 0 {
		t.Errorf("the batch's bytes were not given back (buffered %d)", stats.BufferedBytes.Load())
	}
	again := e.take(2) // handed back, after a second
	for _, m := range again {
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if md.NumDelivered != 2 {
			t.Errorf("event %d comes again with NumDelivered %d, want 2", md.Sequence.Stream, md.NumDelivered)
		}
	}
	if n, _ := e.rc.snapshot(); n != 0 {
		t.Errorf("the receiver got %d requests, want none", n)
	}
}

// quickFeed is an empty registry whose change feed answers at once.
type quickFeed struct{ *stuckFeed }

func (quickFeed) Changes(ctx context.Context, _ string, _ int, wait time.Duration) ([]subscriptions.Change, string, error) {
	select {
	case <-time.After(wait):
	case <-ctx.Done():
	}
	return nil, "0-0", nil
}

// Once Loaded says the index is loaded, it follows the feed: a partition
// started then syncs without error. Before, Loaded was closed inside the
// load and the feed position stored after it returned, so a partition
// woken in between failed its first sync (errIndexNotFollowing) and
// handed its first batch back for a second.
func TestLoadedIndexIsFollowing(t *testing.T) {
	for i := range 200 {
		x := newIndex(quickFeed{newStuckFeed(t)}, "default", zerolog.Nop())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = x.Run(ctx) }()
		<-x.Loaded()
		err := x.syncAfter(ctx, time.Now())
		cancel()
		<-done
		if err != nil {
			t.Fatalf("round %d: sync right after Loaded: %v", i, err)
		}
	}
}
