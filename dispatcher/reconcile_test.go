package dispatcher

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// newTestReconciler is a reconciler on a private JetStream and store,
// with a fleet that starts no runners (fleet.run is only reached for
// webhooks whose consumer was made; the tests read consumers).
func newTestReconciler(t *testing.T, store *fakeStore) (*reconciler, jetstream.JetStream) {
	t.Helper()
	cfg := Config{AllowInsecureEndpoints: true}.withDefaults()
	js, st := testJS(t, cfg)
	stats := new(Stats)
	f := &fleet{cfg: cfg, plan: eventPlan(cfg), js: js, slots: store, courier: testCourier(cfg, js, store), log: zerolog.Nop(),
		stats: stats, runners: make(map[string]*runner), heal: func(string) {}}
	r := &reconciler{cfg: cfg, js: js, streams: st, reg: store, fleet: f, log: zerolog.Nop(), stats: stats,
		applied: make(map[string]string), problem: make(map[string]string)}
	t.Cleanup(f.stopAll)
	return r, js
}

func hasConsumer(t *testing.T, js jetstream.JetStream, id string) bool {
	t.Helper()
	_, err := js.Consumer(context.Background(), "EVENTS", consumerName(id))
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// A registry that comes back empty (a Redis restarted on an empty data
// dir: a new epoch, no webhooks) is refused: the consumer and its backlog
// stay. When the original registry is back, reconciling resumes; a
// registry change in it (the webhook deleted) is then acted on.
func TestReconcileRefusesReplacedRegistry(t *testing.T) {
	w := subscriptions.Webhook{ID: "wh1", AccountID: "a1", Enabled: true, EndpointURL: "http://127.0.0.1:1/",
		Topics: []string{"event:klaviyo.sent_sms"}, ActiveSince: time.Now()}
	store := &fakeStore{webhooks: []subscriptions.Webhook{w}, epoch: "original", rev: 1}
	r, js := newTestReconciler(t, store)
	ctx := context.Background()
	rev, full := int64(-1), time.Time{}
	if err := r.tick(ctx, &rev, &full, false); err != nil {
		t.Fatal(err)
	}
	if !hasConsumer(t, js, "wh1") {
		t.Fatal("no consumer for an enabled webhook")
	}

	store.mu.Lock()
	store.webhooks, store.epoch, store.rev = nil, "", 0 // Redis came back empty
	store.mu.Unlock()
	for range 2 {
		full = time.Time{} // a full pass would delete orphans
		if err := r.tick(ctx, &rev, &full, false); err != nil {
			t.Fatal(err)
		}
	}
	if !hasConsumer(t, js, "wh1") {
		t.Fatal("consumer deleted on an empty registry")
	}
	if r.stats.RegistryMismatch.Load() != 1 {
		t.Errorf("RegistryMismatch = %d, want 1", r.stats.RegistryMismatch.Load())
	}
	if store.epoch != "" {
		t.Errorf("epoch %q created on the refused registry, want none", store.epoch)
	}

	store.mu.Lock()
	store.epoch, store.rev = "original", 2 // the backup is restored, with the webhook deleted since
	store.mu.Unlock()
	full = time.Time{}
	if err := r.tick(ctx, &rev, &full, false); err != nil {
		t.Fatal(err)
	}
	if r.stats.RegistryMismatch.Load() != 0 || hasConsumer(t, js, "wh1") {
		t.Errorf("after restore: mismatch %d, consumer kept %v; want 0 and deleted",
			r.stats.RegistryMismatch.Load(), hasConsumer(t, js, "wh1"))
	}
}

// AdoptRegistry accepts a replaced registry at start-up.
func TestReconcileAdoptsRegistry(t *testing.T) {
	store := &fakeStore{epoch: "one", rev: 1}
	r, _ := newTestReconciler(t, store)
	ctx := context.Background()
	rev, full := int64(-1), time.Time{}
	if err := r.tick(ctx, &rev, &full, false); err != nil {
		t.Fatal(err)
	}
	store.epoch, rev = "two", -1
	if err := r.tick(ctx, &rev, &full, false); err != nil || r.stats.RegistryMismatch.Load() != 1 {
		t.Fatalf("tick = %v, mismatch %d; want refused", err, r.stats.RegistryMismatch.Load())
	}
	rev = -1
	if err := r.tick(ctx, &rev, &full, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.streams.epoch(ctx); got != "two" || r.stats.RegistryMismatch.Load() != 0 {
		t.Errorf("recorded epoch %q, mismatch %d; want two and 0", got, r.stats.RegistryMismatch.Load())
	}
}

// A webhook that is enabled but cannot be delivered says so in its
// delivery state and the gauge, once, not at every pass.
func TestReconcileRecordsUndeliverable(t *testing.T) {
	bad := subscriptions.Webhook{ID: "wh-bad", AccountID: "a.b", Enabled: true, EndpointURL: "http://127.0.0.1:1/",
		Topics: []string{"event:klaviyo.sent_sms"}, ActiveSince: time.Now()}
	store := &fakeStore{webhooks: []subscriptions.Webhook{bad}, epoch: "e", rev: 1}
	r, _ := newTestReconciler(t, store)
	ctx := context.Background()
	rev, full := int64(-1), time.Time{}
	for i := range 3 {
		rev, full = int64(-1), time.Time{}
		if err := r.tick(ctx, &rev, &full, false); err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
	}
	if store.undeliverable["wh-bad"] == "" || store.setCalls != 1 {
		t.Errorf("undeliverable = %q after %d calls, want a reason set once", store.undeliverable["wh-bad"], store.setCalls)
	}
	if r.stats.Undeliverable.Load() != 1 {
		t.Errorf("Undeliverable gauge = %d, want 1", r.stats.Undeliverable.Load())
	}
	store.mu.Lock()
	store.webhooks[0].Enabled = false
	store.mu.Unlock()
	rev = -1
	if err := r.tick(ctx, &rev, &full, false); err != nil {
		t.Fatal(err)
	}
	if r.stats.Undeliverable.Load() != 0 {
		t.Errorf("Undeliverable gauge = %d after disabling, want 0", r.stats.Undeliverable.Load())
	}
}
