package dispatcher

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/subscriptions"
)

// webhookStore is an extraStore that only knows one webhook.
type webhookStore struct {
	extraStore
	w subscriptions.Webhook
}

func (s webhookStore) Get(context.Context, string, string) (subscriptions.Webhook, error) {
	return s.w, nil
}

// A replayed batch with an event that cannot be delivered (not JSON: it
// is dead-lettered) and a first request that fails: the courier drops
// the bad event from the batch, and the replay sends the others again
// once each, counting each delivered event once.
func TestReplayDeliverSetsAsideAndResendsOnce(t *testing.T) {
	var mu sync.Mutex
	n := 0
	f := newDeliveryFixture(t, func([]byte) int {
		mu.Lock()
		defer mu.Unlock()
		if n++; n == 1 {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	ctx := context.Background()
	if _, err := f.js.Publish(ctx, "event:klaviyo.sent_sms.acct1", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	f.publish(ids(2)...)
	msgs, err := fetch(ctx, f.cons, 3, 0, 5*time.Second)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("fetched %d, %v; want 3", len(msgs), err)
	}
	batch := make([]jetstream.Msg, len(msgs))
	for i, m := range msgs {
		batch[i] = &replayMsg{Msg: m, subject: m.Subject()}
	}
	r := &replayer{cfg: f.c.cfg, store: webhookStore{w: f.w}, courier: f.c, stats: new(RecoveryStats)}
	rep := &subscriptions.Replay{ID: "r", WebhookID: f.w.ID, AccountID: f.w.AccountID}
	sent, err := r.deliver(ctx, rep, batch)
	if err != nil {
		t.Fatal(err)
	}
	requests, got := f.rc.snapshot()
	if want := []string{"ev00", "ev01"}; !slices.Equal(got, want) || requests != 2 {
		t.Errorf("receiver accepted %v in %d requests, want %v once each in 2", got, requests, want)
	}
	if sent != 2 {
		t.Errorf("sent = %d, want 2 (the bad event set aside)", sent)
	}
	if res := batch[0].(*replayMsg).get(); res != replaySetAside {
		t.Errorf("bad event: result %v, want set aside", res)
	}
}
