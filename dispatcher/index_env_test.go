package dispatcher

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/test/harness"
)

// ixFeed wraps a feed to count full loads, run a hook inside All, and
// hold Changes calls while paused.
type ixFeed struct {
	indexFeed
	afterAll func() // called once, after the real All read the registry
	alls     atomic.Int32

	mu      sync.Mutex
	paused  chan struct{} // non-nil: Changes waits until it is closed
	waiting chan struct{} // closed when a Changes call is held
}

func (f *ixFeed) All(ctx context.Context) ([]subscriptions.Webhook, error) {
	ws, err := f.indexFeed.All(ctx)
	f.alls.Add(1)
	f.mu.Lock()
	hook := f.afterAll
	f.afterAll = nil
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	return ws, err
}

func (f *ixFeed) Changes(ctx context.Context, after string, limit int, block time.Duration) ([]subscriptions.Change, string, error) {
	f.mu.Lock()
	p, w := f.paused, f.waiting
	f.mu.Unlock()
	if p != nil {
		close(w)
		<-p
	}
	return f.indexFeed.Changes(ctx, after, limit, block)
}

// hold makes the next Changes call wait and returns once one does, so
// the test can change the registry while the index is not reading the
// feed. release lets it go.
func (f *ixFeed) hold(tb testing.TB) (release func()) {
	tb.Helper()
	p, w := make(chan struct{}), make(chan struct{})
	f.mu.Lock()
	f.paused, f.waiting = p, w
	f.mu.Unlock()
	select {
	case <-w:
	case <-time.After(10 * time.Second):
		tb.Fatal("the index did not call Changes within 10s")
	}
	f.mu.Lock()
	f.paused, f.waiting = nil, nil
	f.mu.Unlock()
	return func() { close(p) }
}

// ixChanges records what onChange reports, as "old->new" names ("nil" for nil, "(off)" when disabled).
type ixChanges struct {
	mu  sync.Mutex
	got []string
}

func (c *ixChanges) record(old, cur *subscriptions.Webhook) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, ixName(old)+"->"+ixName(cur))
}

func ixName(w *subscriptions.Webhook) string {
	if w == nil {
		return "nil"
	}
	if !w.Enabled {
		return w.Name + "(off)"
	}
	return w.Name
}

func (c *ixChanges) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.got
	c.got = nil
	return got
}

// ixLog is a zerolog writer safe for concurrent use.
type ixLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *ixLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *ixLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// ixEnv is a store on a private redis-server and an index following it.
type ixEnv struct {
	redis   *harness.Redis
	rdb     *redis.Client
	store   *subscriptions.Store
	feed    *ixFeed
	x       *index
	changes *ixChanges
	log     *ixLog
}

// newIxEnv makes the environment; setup may adjust the index before Run
// starts (gate, hooks). The index runs until the test ends, and Run
// must return nil then.
func newIxEnv(tb testing.TB, setup func(*ixEnv)) *ixEnv {
	tb.Helper()
	e := &ixEnv{redis: harness.StartRedis(tb), changes: &ixChanges{}, log: &ixLog{}}
	// Fail fast while Redis is down (go-redis retries a dial 5 times and
	// a command 3 times by default), so the outage test is quick.
	e.rdb = redis.NewClient(&redis.Options{Network: "unix", Addr: e.redis.Socket, MaxRetries: -1, DialerRetries: 1})
	tb.Cleanup(func() { e.rdb.Close() })
	e.store = subscriptions.New(e.rdb, subscriptions.Config{MaxWebhooksPerAccount: 100})
	e.feed = &ixFeed{indexFeed: e.store}
	e.x = newIndex(e.feed, "default", zerolog.New(e.log))
	e.x.onChange = e.changes.record
	e.x.block, e.x.retryMin, e.x.retryMax = 50*time.Millisecond, 5*time.Millisecond, 20*time.Millisecond
	if setup != nil {
		setup(e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.x.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("Run() = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			tb.Error("Run did not return within 10s of cancel")
		}
	})
	return e
}

func (e *ixEnv) create(tb testing.TB, account, name string, topics ...string) subscriptions.Webhook {
	tb.Helper()
	w, err := e.store.Create(context.Background(), subscriptions.NewWebhook{
		AccountID: account, Name: name, EndpointURL: "https://example.com/" + name,
		Secret: "0123456789abcdef", Topics: topics,
	})
	if err != nil {
		tb.Fatalf("Create(%s) = %v", name, err)
	}
	return w
}

func (e *ixEnv) update(tb testing.TB, w subscriptions.Webhook, p subscriptions.Patch) {
	tb.Helper()
	if _, err := e.store.Update(context.Background(), w.AccountID, w.ID, p); err != nil {
		tb.Fatalf("Update(%s) = %v", w.Name, err)
	}
}

// ixWait polls cond until it holds, failing the test after 10 s.
func ixWait(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ixTargets lists the names Targets returns.
func ixTargets(x *index, account, topic string) []string {
	return ixNames(x.Targets(account, topic))
}

func ixLoaded(tb testing.TB, x *index) {
	tb.Helper()
	select {
	case <-x.Loaded():
	case <-time.After(10 * time.Second):
		tb.Fatal("the index was not loaded within 10s")
	}
	if !x.Ready() {
		tb.Fatal("Ready() = false after Loaded, want true")
	}
}

func ptrTo[T any](v T) *T { return &v }
