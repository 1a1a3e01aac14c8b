package flows

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions/flows"
	"github.com/webhookd/webhookd/test/harness"
)

// gatedStore serves one flow, but only once open is closed: the first
// index load of a replica that starts while Redis is slow.
type gatedStore struct {
	open    chan struct{}
	flow    flows.Flow
	skipped atomic.Int64
}

func (s *gatedStore) Rev(ctx context.Context) (int64, error) { return 1, nil }
func (s *gatedStore) All(ctx context.Context) ([]flows.Flow, error) {
	select {
	case <-s.open:
		return []flows.Flow{s.flow}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
func (s *gatedStore) Acquire(context.Context, string, string, int, time.Duration) (bool, error) {
	return true, nil
}
func (s *gatedStore) Release(context.Context, string, string) error       { return nil }
func (s *gatedStore) Record(context.Context, string, flows.Outcome) error { return nil }
func (s *gatedStore) SkipUnsent(context.Context, string, bool) error      { s.skipped.Add(1); return nil }
func (s *gatedStore) ActionExists(context.Context, string) (bool, error)  { return true, nil }

// A retry due when a replica starts (all replicas were down while it
// came due) is sent once the index has loaded, not skipped as "no longer
// live" because the index was still empty.
func TestRetryDueAtStartWaitsForTheIndex(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	js, err := jetstream.New(harness.Connect(t, harness.NATS(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"event:klaviyo.>"}}); err != nil {
		t.Fatal(err)
	}
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { posts.Add(1) }))
	defer srv.Close()
	st := &gatedStore{open: make(chan struct{}), flow: flows.Flow{
		ID: "f1", AccountID: "acct", Status: flows.StatusLive, TriggerID: "event:klaviyo.placed_order",
		Created: time.Now().Add(-time.Hour),
		Actions: []flows.Action{{ID: "a1", Status: flows.StatusLive, Message: flows.Message{URL: srv.URL, Body: `{"ok":true}`}}},
	}}
	d := New(Config{AllowInsecureEndpoints: true, IndexPoll: 20 * time.Millisecond}, js, st, zerolog.Nop())
	if _, err := d.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	ev := `{"data":{"type":"event","id":"ev1","attributes":{"event_properties":{"n":1}}}}`
	body, _ := json.Marshal(retryMsg{FlowID: "f1", ActionID: "a1", Seq: 1, Subject: "event:klaviyo.placed_order.acct",
		Attempt: 2, First: time.Now().Add(-time.Minute).UnixMilli(), Next: time.Now().Add(-time.Second).UnixMilli(),
		Event: json.RawMessage(ev)})
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: retrySubjectPrefix + ".a1", Data: body}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = d.Run(ctx) })
	defer wg.Wait()
	defer cancel()
	// Hold the first index load until the retry was skipped (the defect)
	// or for a while (time enough for the consumer to take it).
	deadline := time.Now().Add(3 * time.Second)
	for st.skipped.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(st.open)
	deadline = time.Now().Add(30 * time.Second)
	for posts.Load() == 0 && st.skipped.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := st.skipped.Load(); n != 0 || posts.Load() != 1 {
		t.Errorf("retry due at start: %d requests, skipped %d times; want it sent once, never skipped", posts.Load(), n)
	}
}
