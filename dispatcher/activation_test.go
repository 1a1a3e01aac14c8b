package dispatcher

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"

	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/test/harness"
)

// stampedMsg is a partition event with external id id stored at a
// chosen time (spyMsg records how it is settled).
type stampedMsg struct {
	*spyMsg
	id string
}

func newStamped(id string, at time.Time) *stampedMsg {
	spy := newSpy(nil)
	spy.meta = &jetstream.MsgMetadata{Timestamp: at, NumDelivered: 1}
	spy.hdr = nats.Header{}
	return &stampedMsg{spyMsg: spy, id: id}
}

func (m *stampedMsg) Data() []byte { return pfixEvent(m.id) }

// A re-enable delivers only events stored after it, also within its
// millisecond. Each round disables the webhook (in a real Redis), reads
// Redis's clock, re-enables it, and reads the clock again; an event
// stamped with the first reading was stored before the re-enable, one
// stamped with the second after it (the stream's clock is taken to be
// Redis's, README). Both are routed through a partition twice: with the
// index holding the re-enable (route decides) and with the index still
// holding the record from before the disable (the slot script's
// ActiveSince decides, dropStaleBefore); a copy of each on the retry
// subject is judged by staleRetry. The rounds go on until three had
// both readings in one millisecond. Before active_since kept
// microseconds, the event stored before the re-enable in its
// millisecond was delivered.
func TestActivationBoundaryWithinAMillisecond(t *testing.T) {
	e := newPfixEnv(t, Config{BatchLinger: 5 * time.Millisecond})
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	store, _, rdb := newPartitionStore(t)
	ctx := context.Background()
	w, err := store.Create(ctx, subscriptions.NewWebhook{AccountID: e.w.AccountID, Name: "boundary",
		EndpointURL: e.w.EndpointURL, Secret: "0123456789abcdef", Topics: e.w.Topics})
	if err != nil {
		t.Fatal(err)
	}
	sending := w
	hs := newTestHooks(t, e, store, rt, lookup{w.ID: &sending})
	hs.courier.slots = store
	x := newIndex(nil, e.cfg.DefaultAccount, zerolog.Nop())
	stats := new(Stats)
	ps := &partitions{cfg: e.cfg, js: e.js, idx: x, hooks: hs, retry: rt,
		dead:   &deadLetterer{prefix: e.cfg.DeadLetter, js: e.js, log: zerolog.Nop(), stats: stats},
		budget: semaphore.NewWeighted(int64(e.cfg.BatchMaxBytes)), topics: newTopicNoter(&fakeStore{}, zerolog.Nop()),
		log: zerolog.Nop(), stats: stats, running: make(map[int]*partitionRun)}

	enable := func(on bool) subscriptions.Webhook {
		t.Helper()
		got, err := store.Update(ctx, w.AccountID, w.ID, subscriptions.Patch{Enabled: &on})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	prev := w // enabled, from before the round's disable
	sameMs := 0
	deadline := time.Now().Add(60 * time.Second)
	for round := 0; sameMs < 3; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("after %d rounds only %d re-enables fell within one millisecond of Redis's clock", round, sameMs)
		}
		enable(false)
		before := harness.RedisNow(t, rdb)
		on := enable(true)
		after := harness.RedisNow(t, rdb)
		if before.UnixMilli() == after.UnixMilli() {
			sameMs++
		}
		for _, view := range []struct {
			name string
			w    subscriptions.Webhook
		}{{"index has the re-enable", on}, {"index before the re-enable", prev}} {
			x.apply(w.ID, &view.w)
			_, ids0 := e.rc.snapshot()
			msgs := []*stampedMsg{newStamped("before", before), newStamped("after", after)}
			released := make(chan struct{}, len(msgs))
			for _, m := range msgs {
				ps.route(ctx, m, func() { released <- struct{}{} })
			}
			for range msgs {
				select {
				case <-released:
				case <-time.After(10 * time.Second):
					t.Fatalf("round %d, %s: an event was not settled within 10s", round, view.name)
				}
			}
			_, ids1 := e.rc.snapshot()
			for _, m := range msgs {
				if acks, naks := m.counts(); acks != 1 || len(naks) != 0 {
					t.Errorf("round %d, %s: %q acks %d, naks %v; want acknowledged", round, view.name, m.id, acks, naks)
				}
			}
			if n := len(ids1) - len(ids0); n != 1 {
				t.Fatalf("round %d, %s: %d deliveries of the events stored at %s and %s around the re-enable (active_since %s), want 1 (only the later one)",
					round, view.name, n, before.Format(time.RFC3339Nano), after.Format(time.RFC3339Nano), on.ActiveSince.Format(time.RFC3339Nano))
			}
		}
		for _, c := range []struct {
			at    time.Time
			stale bool
		}{{before, true}, {after, false}} {
			m := &spyMsg{hdr: nats.Header{headerStoredAt: []string{strconv.FormatInt(c.at.UnixNano(), 10)}}}
			if got := staleRetry(on, m); got != c.stale {
				t.Fatalf("round %d: staleRetry of a copy stored at %s, active_since %s = %v, want %v",
					round, c.at.Format(time.RFC3339Nano), on.ActiveSince.Format(time.RFC3339Nano), got, c.stale)
			}
		}
		prev = on
	}
	_, ids := e.rc.snapshot()
	if len(ids) == 0 {
		t.Fatal("the receiver parsed no event ids")
	}
	for _, id := range ids {
		if id != "after" {
			t.Fatalf("delivered %v, want only events stored after a re-enable", ids)
		}
	}
}
