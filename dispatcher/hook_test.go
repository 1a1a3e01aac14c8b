package dispatcher

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// heldSlots is a slot store with no free slot: every request is told to
// come back in 5 ms. The first request is also held until release is
// called, standing for a pump kept busy longer than divertAfter.
type heldSlots struct {
	entered chan struct{} // closed when the first request arrives
	gate    chan struct{}
	once    sync.Once

	mu      sync.Mutex
	holders map[string]bool // every holder that asked
}

func newHeldSlots(t *testing.T) *heldSlots {
	g := &heldSlots{entered: make(chan struct{}), gate: make(chan struct{}), holders: make(map[string]bool)}
	t.Cleanup(g.release)
	return g
}

func (g *heldSlots) release() { g.once.Do(func() { close(g.gate) }) }

func (g *heldSlots) AcquireSlot(_ context.Context, _, holder string, _ int, _ time.Duration) (subscriptions.Slot, error) {
	g.mu.Lock()
	first := len(g.holders) == 0
	g.holders[holder] = true
	g.mu.Unlock()
	if first {
		close(g.entered)
		<-g.gate
	}
	return subscriptions.Slot{RetryAfter: 5 * time.Millisecond}, nil
}

func (g *heldSlots) ExtendSlot(context.Context, string, string, time.Duration) (bool, error) {
	return true, nil
}

func (g *heldSlots) ReleaseSlot(context.Context, string, string) error { return nil }

func (g *heldSlots) askers() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.holders)
}

// newTestHooks is a hooks on slots and a courier to e's receiver, for
// the webhooks of l; its pumps end before the test's retrier closes.
func newTestHooks(t *testing.T, e *pfixEnv, slots slotStore, rt *retrier, l lookup) *hooks {
	t.Helper()
	store := &fakeStore{epoch: "e"}
	hs := &hooks{cfg: e.cfg, slots: slots, courier: testCourier(e.cfg, e.js, store), retry: rt, idx: l,
		log: zerolog.Nop(), m: make(map[string]*hook)}
	t.Cleanup(func() {
		hs.close()
		hs.wait()
	})
	return hs
}

// A slow endpoint's queued events leave the partition once they have
// waited delivery-timeout + linger, all at once, without a slot request
// each: they are copied to the webhook's retry subject and the partition
// events acknowledged once the copies are stored. Before the fix every
// batch queued behind a blocked one waited its own divertAfter for a
// slot, so a queue of many batches outlived the partition's AckWait.
func TestHookDivertsOverdueQueue(t *testing.T) {
	const n = 5
	e := newPfixEnv(t, Config{DeliveryTimeout: 100 * time.Millisecond, BatchLinger: 10 * time.Millisecond, BatchMaxEvents: 1})
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	slots := newHeldSlots(t)
	hs := newTestHooks(t, e, slots, rt, lookup{e.w.ID: &e.w})
	for i := range n {
		e.publish(ids(n)[i], nil)
	}
	var fans []*testFan
	for _, m := range e.take(n) {
		fans = append(fans, newTestFan(newSpy(m), 1))
	}
	hs.push(e.w.ID, fans[0].share(e.w.ID, rt))
	select { // the first event's batch is asking for a slot
	case <-slots.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no slot request within 5s")
	}
	for _, tf := range fans[1:] {
		hs.push(e.w.ID, tf.share(e.w.ID, rt))
	}
	queued := time.Now()
	waitFor(t, "the queue to be overdue", func() bool { return time.Since(queued) > 2*hs.divertAfter() })
	slots.release() // the first batch is diverted; the rest are overdue
	for i, tf := range fans {
		tf.waitReleased(t)
		if acks, naks := tf.spy.counts(); acks != 1 || len(naks) != 0 {
			t.Errorf("partition event %d: acks %d, naks %v; want acknowledged", i, acks, naks)
		}
	}
	evs := e.retryEvents()
	if len(evs) != n {
		t.Fatalf("retry stream holds %d events, want %d", len(evs), n)
	}
	for _, ev := range evs {
		if ev.webhook != e.w.ID {
			t.Errorf("event on %s, want webhook %s's retry subject", ev.msgSubject, e.w.ID)
		}
	}

	if got := slots.askers(); got != 1 {
		t.Errorf("%d batches asked for a slot, want 1: overdue events are diverted without waiting for one", got)
	}
}

// Events stored before the webhook's current activation (queued while
// it was disabled; it was enabled again since) are acknowledged and
// never delivered; newer events of the same batch are. The activation
// is the one the slot script reads in Redis (the index may not have the
// re-enable yet).
func TestHookDropsStaleShares(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stale int // of the three events, the first stale ones
		want  []string
	}{
		{"all stale", 3, nil},
		{"the first stale", 1, []string{"ev01", "ev02"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newPfixEnv(t, Config{BatchLinger: 50 * time.Millisecond})
			rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
			for _, id := range ids(3) {
				e.publish(id, nil)
			}
			msgs := e.take(3)
			w := e.w
			md, err := msgs[tc.stale-1].Metadata()
			if err != nil {
				t.Fatal(err)
			}
			w.ActiveSince = md.Timestamp.Add(time.Nanosecond) // re-enabled after the stale ones
			if tc.stale < len(msgs) {
				if next, _ := msgs[tc.stale].Metadata(); next.Timestamp.Before(w.ActiveSince) {
					t.Fatalf("events stored at the same time %v: cannot tell them apart", next.Timestamp)
				}
			}
			old := e.w // the index's view: the re-enable has not reached it
			hs := newTestHooks(t, e, &fakeStore{activeSince: w.ActiveSince}, rt, lookup{w.ID: &old})
			var fans []*testFan
			for _, m := range msgs {
				tf := newTestFan(newSpy(m), 1)
				fans = append(fans, tf)
				hs.push(w.ID, tf.share(w.ID, rt))
			}
			for i, tf := range fans {
				tf.waitReleased(t)
				if acks, naks := tf.spy.counts(); acks != 1 || len(naks) != 0 {
					t.Errorf("event %d: acks %d, naks %v; want acknowledged", i, acks, naks)
				}
			}
			// Every fan is settled: a delivered event was received first.
			if _, got := e.rc.snapshot(); !cmp.Equal(got, tc.want) {
				t.Errorf("delivered %v, want %v", got, tc.want)
			}
		})
	}
}
