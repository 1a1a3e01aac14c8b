package dispatcher

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A long poll ended by its context (a partition given up, a runner
// stopped) loses nothing: an event the server sent it as it ended is
// handed back at once, not left unacknowledged for AckWait. Before, such
// an event was dropped by the client and the partition's next owner
// waited AckWait (20 s and more) for it: the ~21 s stalls of the scale
// bench's drains right after both replicas started and moved partitions.
func TestIdlePollEndedByContextHandsBack(t *testing.T) {
	js, _ := testJS(t, Config{})
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "POLL", Subjects: []string{"poll.>"}})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "p", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 300
	for i := range rounds {
		pctx, cancel := context.WithCancel(ctx)
		got := make(chan int, 1)
		go func() {
			msgs, _ := fetch(pctx, cons, 1, 0, idleWait)
			for _, m := range msgs {
				_ = m.Ack()
			}
			got <- len(msgs)
		}()
		// Publish and end the poll at (nearly) the same moment, so that
		// some rounds end it while the server is sending the event.
		time.Sleep(time.Duration(i%7) * 100 * time.Microsecond)
		go func() { _, _ = js.Publish(ctx, "poll.x", []byte(strconv.Itoa(i))) }()
		time.Sleep(time.Duration(i%5) * 50 * time.Microsecond)
		cancel()
		if <-got == 1 {
			continue // the poll had it, and acknowledged it
		}
		// The event is the next poll's, now: not after AckWait.
		msgs, err := fetch(ctx, cons, 1, 0, 3*time.Second)
		if err != nil || len(msgs) != 1 {
			if info, ierr := cons.Info(ctx); ierr == nil {
				t.Logf("consumer: %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
			}
			t.Fatalf("round %d: the event the ended poll was sent is not available again (%d, %v): it waits out AckWait", i, len(msgs), err)
		}
		_ = msgs[0].Ack()
	}
}
