package dispatcher

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/test/harness"
)

// fakeStore is a Store in memory: a fixed registry, slots that are
// always free unless lost is set, and recorded outcomes.
type fakeStore struct {
	mu            sync.Mutex
	webhooks      []subscriptions.Webhook
	rev           int64
	epoch         string
	lost          bool              // ExtendSlot reports the lease expired
	gone          bool              // ExtendSlot reports the webhook disabled or deleted
	undeliverable map[string]string // id -> reason, as set
	activeSince   time.Time         // what AcquireSlot reports (the webhook's, in Redis)
	setCalls      int
	failures      int
	successes     int
}

func (f *fakeStore) All(context.Context) ([]subscriptions.Webhook, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]subscriptions.Webhook(nil), f.webhooks...), nil
}

func (f *fakeStore) Revision(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rev, nil
}

func (f *fakeStore) Epoch(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.epoch, nil
}

func (f *fakeStore) EnsureEpoch(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.epoch == "" {
		f.epoch = "fresh"
	}
	return f.epoch, nil
}

func (f *fakeStore) SetUndeliverable(_ context.Context, id, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.undeliverable == nil {
		f.undeliverable = make(map[string]string)
	}
	f.undeliverable[id] = reason
	f.setCalls++
	return nil
}

func (f *fakeStore) AcquireSlot(context.Context, string, string, int, time.Duration) (subscriptions.Slot, error) {
	return subscriptions.Slot{Acquired: true, ActiveSince: f.activeSince}, nil
}

func (f *fakeStore) ExtendSlot(context.Context, string, string, time.Duration) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		return false, subscriptions.ErrWebhookGone
	}
	return !f.lost, nil
}

func (f *fakeStore) ReleaseSlot(context.Context, string, string) error { return nil }

func (f *fakeStore) RecordSuccess(context.Context, string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.successes++
	return false, nil
}

func (f *fakeStore) RecordFailure(context.Context, string, subscriptions.Failure, subscriptions.Backoff) (subscriptions.FailureResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures++
	return subscriptions.FailureResult{Delay: 50 * time.Millisecond, Failures: f.failures}, nil
}

func (f *fakeStore) DisableExpired(context.Context, time.Duration) ([]string, error) { return nil, nil }

func (f *fakeStore) AddTopics(context.Context, string, ...string) error { return nil }

// testJS is a real JetStream on a private in-process server, with the
// dispatcher's streams created.
func testJS(t *testing.T, cfg Config) (jetstream.JetStream, *streams) {
	t.Helper()
	js, err := jetstream.New(harness.Connect(t, harness.NATS(t)))
	if err != nil {
		t.Fatal(err)
	}
	st := &streams{cfg: cfg.withDefaults(), js: js, log: zerolog.Nop()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	return js, st
}

// testCourier is a courier on store and js.
func testCourier(cfg Config, js jetstream.JetStream, store *fakeStore) *courier {
	cfg = cfg.withDefaults()
	stats := new(Stats)
	return &courier{
		cfg: cfg, slots: store, states: store, client: newClient(cfg), log: zerolog.Nop(), stats: stats,
		dead:       &deadLetterer{prefix: cfg.DeadLetter, js: js, log: zerolog.Nop(), stats: stats},
		lostLogger: zerolog.Nop(),
	}
}
