package test

import (
	"context"
	"testing"
	"time"
)

// A consumer, or the whole event stream, that vanishes from the server
// (a NATS server back without its store) is recreated within seconds —
// well before the reconciler's 30 s full resync — and delivery goes on.
func TestLostConsumerAndStreamRecreated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	sink := NewSink(t, testSecret)
	w := e.create("default", sink.URL, topicSMS)
	e.waitConsumer(w.ID, true)
	waitDelivered(t, sink, e.publish(topicSMS, "before", 5), 10*time.Second)

	ctx := context.Background()
	if err := e.js.DeleteConsumer(ctx, "EVENTS", consumerOf(w)); err != nil {
		t.Fatal(err)
	}
	e.waitConsumer(w.ID, true)
	waitDelivered(t, sink, e.publish(topicSMS, "after-consumer", 5), 10*time.Second)

	if err := e.js.DeleteStream(ctx, "EVENTS"); err != nil {
		t.Fatal(err)
	}
	e.waitConsumer(w.ID, true)
	waitDelivered(t, sink, e.publish(topicSMS, "after-stream", 5), 10*time.Second)
}
