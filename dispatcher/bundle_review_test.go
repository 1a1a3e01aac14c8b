package dispatcher

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"

	"github.com/webhookd/webhookd/subscriptions"
)

// retryRunner is a runner of wh1's retry consumer with the retry keeper's
// plan, on a store whose slots are always free, and that consumer.
func retryRunner(t *testing.T, e *pfixEnv) (*runner, jetstream.Consumer) {
	t.Helper()
	k := &retryKeeper{cfg: e.cfg, js: e.js}
	plan := k.retryPlan()
	plan.onIdle = nil // the keeper's flags and index are not here
	plan.stale = func(w subscriptions.Webhook, m jetstream.Msg) bool { return staleRetry(w, m) }
	store := &fakeStore{}
	wg := new(sync.WaitGroup)
	t.Cleanup(wg.Wait)
	r := &runner{
		cfg: e.cfg, plan: plan, js: e.js, id: e.w.ID, slots: store, courier: testCourier(e.cfg, e.js, store),
		budget: semaphore.NewWeighted(e.cfg.MaxBufferedBytes), local: semaphore.NewWeighted(int64(e.cfg.MaxInFlight)),
		stats: new(Stats), heal: func(string) {}, log: zerolog.Nop(), wg: wg, done: make(chan struct{}),
	}
	r.wh.Store(&e.w)
	c, err := e.js.CreateOrUpdateConsumer(context.Background(), e.cfg.retryStream(), e.cfg.retryConsumerConfig(e.w.ID))
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

// retryMsgs is how many messages the retry stream holds.
func retryMsgs(t *testing.T, e *pfixEnv) uint64 {
	t.Helper()
	st, err := e.js.Stream(context.Background(), e.cfg.retryStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// A batch's events are diverted in bundles that fit in one NATS message
// with their headers: the events' headers count. Before, the size was
// estimated from data and subject alone, so events with large headers
// made a bundle over max_payload, whose publish failed every time: the
// partition events were handed back again and again (a duplicate for
// every other webhook of them each time) and never reached the retry
// subject.
func TestDivertBundleCountsHeaders(t *testing.T) {
	e := newPfixEnv(t, Config{})
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	big := strings.Repeat("h", 60_000) // 20 of them are over max_payload (1 MiB)
	const n = 20
	for i := range n {
		e.publish("ev"+strconv.Itoa(i), nats.Header{"X-Big": []string{big}})
	}
	divertTaken(t, e, rt, n)
	limit := int(e.js.Conn().MaxPayload())
	for _, c := range e.retryCopies() {
		size := len(c.Data)
		for k, vs := range c.Header {
			for _, v := range vs {
				size += len(k) + len(v)
			}
		}
		if size > limit {
			t.Errorf("bundle of %d bytes, over max_payload %d", size, limit)
		}
	}
	evs := e.retryEvents()
	if len(evs) != n {
		t.Fatalf("retry subject holds %d events, want %d", len(evs), n)
	}
	for i, ev := range evs {
		if ev.header.Get("X-Big") != big || !bytes.Equal(ev.data, pfixEvent("ev"+strconv.Itoa(i))) {
			t.Errorf("event %d lost its header or data", i)
		}
	}
}

// Two events at the same sequence of the event stream but stored at
// different times (the stream was recreated and its sequences restarted
// within the retry stream's 2-minute duplicate window) are two events:
// both reach the retry subject. Before, a bundle's Nats-Msg-Id named its
// events by stream and sequence only, so the second was taken for a
// duplicate of the first and dropped.
func TestDivertReusedSequenceIsAnotherEvent(t *testing.T) {
	e := newPfixEnv(t, Config{})
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	at := time.Now()
	for i := range 2 {
		spy := newSpy(nil)
		spy.meta = &jetstream.MsgMetadata{Stream: e.cfg.Stream, Sequence: jetstream.SequencePair{Stream: 7},
			Timestamp: at.Add(time.Duration(i) * time.Minute), NumDelivered: 1}
		tf := newTestFan(spy, 1)
		_ = tf.share(e.w.ID, rt).Nak()
		tf.waitReleased(t)
		if acks, naks := spy.counts(); acks != 1 || len(naks) != 0 {
			t.Fatalf("event %d: acks %d, naks %v; want acknowledged", i, acks, naks)
		}
	}
	if evs := e.retryEvents(); len(evs) != 2 {
		t.Fatalf("retry subject holds %d events, want 2: the second was taken for a duplicate", len(evs))
	}
}

// A retry runner fills a batch with whole bundles and leaves the next
// ones alone. Before, it asked for a message per event still wanted, so
// it fetched every bundle there was and handed all but the first few
// straight back: a redelivery each, every cycle, each counted as a try
// (attempt, and the poison search's "refused before").
func TestRetryFillLeavesBundlesItCannotTake(t *testing.T) {
	e := newPfixEnv(t, Config{BatchMaxEvents: 100})
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	for range 5 {
		divertBatch(t, e, rt, 30)
	}
	r, c := retryRunner(t, e)
	if _, err := r.cycle(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first three bundles delivered and gone", func() bool {
		_, got := e.rc.snapshot()
		return len(got) == 90 && retryMsgs(t, e) == 2
	})
	msgs, err := fetch(context.Background(), c, 10, 0, time.Second)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("fetched %d bundles (%v), want the 2 left", len(msgs), err)
	}
	for i, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if md.NumDelivered != 1 {
			t.Errorf("bundle %d left: delivered %d times, want 1 (fetched and handed back unsent)", i, md.NumDelivered)
		}
		_ = m.Ack()
	}
}

// A bundle that fills a batch by itself holds its bytes in the replica's
// budget while it is delivered. Before, a batch whose first message
// already carried a batch of events reserved nothing: a retry backlog of
// full bundles was held outside MaxBufferedBytes.
func TestRetryFullBundleHoldsBudget(t *testing.T) {
	e := newPfixEnv(t, Config{BatchMaxEvents: 10})
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	divertBatch(t, e, rt, 10)
	copies := e.retryCopies()
	if len(copies) != 1 {
		t.Fatalf("%d bundles, want 1", len(copies))
	}
	size := int64(len(copies[0].Data))
	var arrived atomic.Int32
	gate := make(chan struct{})
	e.rc.refuse = func([]byte) int {
		arrived.Add(1)
		<-gate
		return 0
	}
	r, c := retryRunner(t, e)
	if _, err := r.cycle(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the request at the receiver", func() bool { return arrived.Load() > 0 })
	held := r.stats.BufferedBytes.Load()
	close(gate)
	if held != size {
		t.Errorf("a delivery of a %d-byte bundle holds %d bytes of the budget", size, held)
	}
	waitFor(t, "the budget given back", func() bool { return r.stats.BufferedBytes.Load() == 0 && retryMsgs(t, e) == 0 })
}

// A retry consumer made before bundles (FilterSubject: the single-copy
// subject) is updated to read bundles too: the single copies it had and a
// bundle published before the update are all delivered, once.
func TestRetryConsumerUpdatedForBundles(t *testing.T) {
	e := newPfixEnv(t, Config{BatchMaxEvents: 10})
	ctx := context.Background()
	old := e.cfg.retryConsumerConfig(e.w.ID)
	old.FilterSubjects, old.FilterSubject = nil, retrySubject(e.w.ID)
	if _, err := e.js.CreateOrUpdateConsumer(ctx, e.cfg.retryStream(), old); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		m := nats.NewMsg(retrySubject(e.w.ID))
		m.Data = pfixEvent("legacy" + strconv.Itoa(i))
		m.Header.Set(headerOrigin, pfixSubject)
		m.Header.Set(headerStoredAt, strconv.FormatInt(time.Now().UnixNano(), 10))
		if _, err := e.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	divertBatch(t, e, rt, 5)
	r, c := retryRunner(t, e) // the update
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Config.FilterSubjects; len(got) != 2 || info.Config.FilterSubject != "" {
		t.Fatalf("updated consumer filters %q / %q", got, info.Config.FilterSubject)
	}
	deadline := time.Now().Add(10 * time.Second)
	for retryMsgs(t, e) > 0 && time.Now().Before(deadline) {
		if _, err := r.cycle(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every event delivered", func() bool {
		_, got := e.rc.snapshot()
		return len(got) == 7
	})
	_, got := e.rc.snapshot()
	want := []string{"ev0", "ev1", "ev2", "ev3", "ev4", "legacy0", "legacy1"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("delivered %v, want %v", got, want)
	}
}

// Events handed back from part of a bundle wait their backoff like the
// ones of a bundle handed back whole: the split-off bundle carries when
// it is due, and a retry runner that fetches it earlier hands it back
// unsent until then. Before, a split-off bundle was sent at once (the
// flapping-endpoint fault test saw an event retried 83 ms after its
// failure, with a 200 ms backoff).
func TestSplitOffWaitsItsBackoff(t *testing.T) {
	e := newPfixEnv(t, Config{})
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	divertBatch(t, e, rt, 10)
	_, parts := retryBundle(t, e)
	const backoff = 2 * time.Second
	handedBack := time.Now()
	for i, p := range parts {
		if i < 4 {
			_ = p.NakWithDelay(backoff)
		} else {
			_ = p.Ack()
		}
	}
	r, c := retryRunner(t, e)
	waitFor(t, "the split-off bundle stored", func() bool { return len(e.retryEvents()) == 4 })
	for time.Since(handedBack) < backoff-200*time.Millisecond {
		if _, err := r.cycle(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		if _, got := e.rc.snapshot(); len(got) > 0 {
			t.Fatalf("split-off events delivered %v after being handed back with a %v backoff", time.Since(handedBack), backoff)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := r.cycle(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		if _, got := e.rc.snapshot(); len(got) == 4 {
			return
		}
	}
	_, got := e.rc.snapshot()
	t.Fatalf("%d of the 4 split-off events delivered after their backoff, want 4", len(got))
}
