package dispatcher

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// receiver records the external ids of every accepted request and
// answers with refuse(body) (0: 200).
type receiver struct {
	mu       sync.Mutex
	requests int
	accepted []string
	refuse   func(body []byte) int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if code := rc.refuse(body); code != 0 {
		w.WriteHeader(code)
		return
	}
	for _, part := range bytes.Split(body, []byte(`"external_id":"`))[1:] {
		rc.accepted = append(rc.accepted, string(part[:bytes.IndexByte(part, '"')]))
	}
}

func (rc *receiver) snapshot() (int, []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	ids := append([]string(nil), rc.accepted...)
	sort.Strings(ids)
	return rc.requests, ids
}

// deliveryFixture is a webhook with its consumer, a receiver and a
// courier, on a private JetStream.
type deliveryFixture struct {
	t     *testing.T
	js    jetstream.JetStream
	cons  jetstream.Consumer
	store *fakeStore
	c     *courier
	w     subscriptions.Webhook
	rc    *receiver
}

func newDeliveryFixture(t *testing.T, refuse func([]byte) int) *deliveryFixture {
	t.Helper()
	cfg := Config{AllowInsecureEndpoints: true, BackoffBase: 10 * time.Millisecond}
	js, st := testJS(t, cfg)
	rc := &receiver{refuse: refuse}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	store := &fakeStore{epoch: "e"}
	w := subscriptions.Webhook{
		ID: "wh1", AccountID: "acct1", EndpointURL: srv.URL, Secret: "s", Enabled: true,
		Topics: []string{"event:klaviyo.sent_sms"}, ActiveSince: time.Now().Add(-time.Minute),
	}
	rec := &reconciler{cfg: st.cfg, js: js, streams: st, log: zerolog.Nop()}
	ctx := context.Background()
	if err := rec.ensureConsumer(ctx, w); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, st.cfg.Stream, consumerName(w.ID))
	if err != nil {
		t.Fatal(err)
	}
	return &deliveryFixture{t: t, js: js, cons: cons, store: store, c: testCourier(cfg, js, store), w: w, rc: rc}
}

// publish publishes events with the given ids.
func (f *deliveryFixture) publish(ids ...string) {
	f.t.Helper()
	for _, id := range ids {
		ev := fmt.Sprintf(`{"data":{"type":"event","id":%q,"attributes":{"n":1}}}`, id)
		if _, err := f.js.Publish(context.Background(), "event:klaviyo.sent_sms.acct1", []byte(ev)); err != nil {
			f.t.Fatal(err)
		}
	}
}

// round fetches up to n events (waiting for them to be redelivered if
// needed) and delivers them as one batch.
func (f *deliveryFixture) round(n int) []jetstream.Msg {
	f.t.Helper()
	var msgs []jetstream.Msg
	deadline := time.Now().Add(10 * time.Second)
	for len(msgs) < n && time.Now().Before(deadline) {
		more, err := fetch(context.Background(), f.cons, n-len(msgs), 0, 200*time.Millisecond)
		if err != nil {
			f.t.Fatal(err)
		}
		msgs = append(msgs, more...)
	}
	if len(msgs) != n {
		f.t.Fatalf("fetched %d events, want %d", len(msgs), n)
	}
	f.c.deliver(f.w, "holder", msgs)
	return msgs
}

// A webhook disabled after its batch took a slot gets no request from
// that batch: nothing reaches the receiver, no failure or lost lease is
// counted, and the events go back to the stream (where the next slot
// request, Gone, drops them).
func TestDeliverToWebhookDisabledMeanwhileSendsNothing(t *testing.T) {
	f := newDeliveryFixture(t, func([]byte) int { return 0 })
	f.store.gone = true
	f.publish(ids(3)...)
	f.round(3)
	if n, _ := f.rc.snapshot(); n != 0 {
		t.Errorf("receiver got %d requests for a disabled webhook, want 0", n)
	}
	if f.store.failures != 0 || f.c.stats.LostLeases.Load() != 0 {
		t.Errorf("failures %d, lost leases %d; want 0 and 0", f.store.failures, f.c.stats.LostLeases.Load())
	}
	f.store.gone = false
	if msgs := f.round(3); len(msgs) != 3 { // handed back, not acknowledged
		t.Errorf("%d events came back, want 3", len(msgs))
	}
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("ev%02d", i)
	}
	return out
}

// A request is never sent on a lease that expired (a paused replica):
// nothing reaches the receiver, the webhook's error state is untouched,
// and the events come back at once.
func TestDeliverLostLeaseSendsNothing(t *testing.T) {
	f := newDeliveryFixture(t, func([]byte) int { return 0 })
	f.store.lost = true
	f.publish(ids(3)...)
	f.round(3)
	if n, _ := f.rc.snapshot(); n != 0 {
		t.Errorf("receiver got %d requests on a lost lease, want 0", n)
	}
	if f.store.failures != 0 || f.c.stats.LostLeases.Load() != 1 {
		t.Errorf("failures %d, lost leases %d; want 0 and 1", f.store.failures, f.c.stats.LostLeases.Load())
	}
	f.store.lost = false
	msgs := f.round(3) // handed back without delay
	if md, _ := msgs[0].Metadata(); md.NumDelivered != 2 {
		t.Errorf("redelivered event NumDelivered = %d, want 2", md.NumDelivered)
	}
	if _, got := f.rc.snapshot(); len(got) != 3 {
		t.Errorf("delivered %v, want 3 events", got)
	}
}

// One event a receiver refuses every time (here: 500 for any body that
// holds it) is found by halving and set aside as "rejected"; every other
// event of its batch is delivered, and only the first, whole-batch
// failure counts against the webhook.
func TestDeliverIsolatesRefusedEvent(t *testing.T) {
	f := newDeliveryFixture(t, func(b []byte) int {
		if bytes.Contains(b, []byte(`"ev05"`)) {
			return http.StatusInternalServerError
		}
		return 0
	})
	f.publish(ids(16)...)
	f.round(16) // first failure: an outage as far as anyone knows
	if _, got := f.rc.snapshot(); len(got) != 0 || f.store.failures != 1 {
		t.Fatalf("after the first round: delivered %v, failures %d; want none and 1", got, f.store.failures)
	}
	f.round(16) // the second attempt searches
	_, got := f.rc.snapshot()
	want := ids(16)
	want = append(want[:5], want[6:]...)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("delivered %v, want %v", got, want)
	}
	if f.store.failures != 1 {
		t.Errorf("failures = %d, want 1 (isolating is not the webhook's failure)", f.store.failures)
	}
	dl := deadLetters(t, f.js)
	if len(dl) != 1 || dl[0].Headers().Get(HeaderCode) != "rejected" || !bytes.Contains(dl[0].Data(), []byte(`"ev05"`)) {
		t.Fatalf("dead letters = %v, want ev05 as rejected", dl)
	}
}

// An endpoint refusing everything is an outage, not sixteen poisoned
// events: the search stops after both halves fail and nothing is set
// aside.
func TestDeliverOutageIsNotIsolated(t *testing.T) {
	f := newDeliveryFixture(t, func([]byte) int { return http.StatusInternalServerError })
	f.publish(ids(16)...)
	f.round(16)
	f.round(16)
	if n, _ := f.rc.snapshot(); n != 1+3 {
		t.Errorf("requests = %d, want 4 (whole, then whole and two halves)", n)
	}
	if f.store.failures != 2 {
		t.Errorf("failures = %d, want 2", f.store.failures)
	}
	if dl := deadLetters(t, f.js); len(dl) != 0 {
		t.Errorf("dead letters = %d, want 0", len(dl))
	}
}

// deadLetters reads everything on the dead-letter stream.
func deadLetters(t *testing.T, js jetstream.JetStream) []jetstream.Msg {
	t.Helper()
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, "EVENTS_DEADLETTER", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(100, jetstream.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	return out
}
