package dispatcher

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
)

// An event handed back whole (some share could not be settled) waits a
// second, doubling with each delivery up to 64 s, so a lasting cause (a
// retry stream refusing copies, Redis away) does not cycle the whole
// backlog every second. The delay is read from the event's NumDelivered;
// without metadata it is a second.
func TestFanHandBackDelay(t *testing.T) {
	for _, tc := range []struct {
		delivered uint64 // NumDelivered; 0 with noMeta: Metadata fails
		noMeta    bool
		want      time.Duration
	}{
		{noMeta: true, want: time.Second},
		{delivered: 0, want: time.Second},
		{delivered: 1, want: time.Second},
		{delivered: 2, want: 2 * time.Second},
		{delivered: 3, want: 4 * time.Second},
		{delivered: 4, want: 8 * time.Second},
		{delivered: 6, want: 32 * time.Second},
		{delivered: 7, want: 64 * time.Second},
		{delivered: 8, want: 64 * time.Second},
		{delivered: 1000, want: 64 * time.Second},
	} {
		name := fmt.Sprintf("delivered=%d", tc.delivered)
		if tc.noMeta {
			name = "no metadata"
		}
		t.Run(name, func(t *testing.T) {
			spy := newSpy(nil)
			if !tc.noMeta {
				spy.meta = &jetstream.MsgMetadata{NumDelivered: tc.delivered}
			}
			tf := newTestFan(spy, 2)
			tf.settle(true)
			tf.settle(false)
			acks, naks := spy.counts()
			if diff := cmp.Diff([]time.Duration{tc.want}, naks); acks != 0 || diff != "" {
				t.Errorf("acks %d, NakWithDelay delays (-want +got):\n%s", acks, diff)
			}
		})
	}
}

// A fan is acknowledged once, when its last share is settled; settling a
// share again (Ack after Ack, Nak after Ack, Term) changes nothing; and
// when any share could not be settled the event is handed back whole,
// once, instead.
func TestFanSettlesOnce(t *testing.T) {
	js, _ := testJS(t, Config{}) // no retry stream: a divert's copy is refused
	rt := newRetrierT(t, Config{}, js, &flagRecorder{})
	for _, tc := range []struct {
		name     string
		settle   []func(a, b, c *share) // in order; the fan must stay open until the last
		wantAcks int
		wantNaks int
	}{
		{"all delivered", []func(a, b, c *share){
			func(a, _, _ *share) { _ = a.Ack() },
			func(a, _, _ *share) { _ = a.Ack(); _ = a.Nak(); _ = a.Term() }, // a again: nothing
			func(_, b, _ *share) { _ = b.Term() },
			func(_, _, c *share) { _ = c.TermWithReason("rejected") },
		}, 1, 0},
		{"one could not be moved to its retry subject", []func(a, b, c *share){
			func(a, _, _ *share) { _ = a.Ack() },
			func(_, _, c *share) { _ = c.Ack() },
			func(_, b, _ *share) { _ = b.Nak() }, // its copy is refused: the fan is handed back
		}, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spy := newSpy(nil)
			spy.meta = &jetstream.MsgMetadata{NumDelivered: 1}
			tf := newTestFan(spy, 3)
			a, b, c := tf.share("a", rt), tf.share("b", rt), tf.share("c", rt)
			for i, step := range tc.settle {
				if acks, naks := spy.counts(); acks+len(naks) != 0 || tf.releaseCount() != 0 {
					t.Fatalf("before step %d: acks %d, naks %v, releases %d; want the fan open", i, acks, naks, tf.releaseCount())
				}
				step(a, b, c)
			}
			tf.waitReleased(t)
			_ = a.Ack() // late settlements of a settled fan change nothing
			_ = b.Nak()
			if acks, naks := spy.counts(); acks != tc.wantAcks || len(naks) != tc.wantNaks || tf.releaseCount() != 1 {
				t.Errorf("acks %d, naks %v, releases %d; want %d acks, %d naks, 1 release",
					acks, naks, tf.releaseCount(), tc.wantAcks, tc.wantNaks)
			}
		})
	}
}

// Shares settled at once from many goroutines, each twice, settle their
// fan exactly once.
func TestFanConcurrentSettlement(t *testing.T) {
	const n = 64
	spy := newSpy(nil)
	spy.meta = &jetstream.MsgMetadata{NumDelivered: 1}
	tf := newTestFan(spy, n)
	var wg sync.WaitGroup
	for i := range n {
		s := tf.share(fmt.Sprint("wh", i), nil)
		for range 2 {
			wg.Go(func() { _ = s.Ack() })
		}
	}
	wg.Wait()
	if acks, naks := spy.counts(); acks != 1 || len(naks) != 0 || tf.releaseCount() != 1 {
		t.Errorf("acks %d, naks %v, releases %d; want 1, none, 1", acks, naks, tf.releaseCount())
	}
}
