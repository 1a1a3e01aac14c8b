package test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/dispatcher"
)

// Issue 11 item 5, the dispatcher's half: an event on a subject of more
// tokens than <topic>.<account> is captured by the stream (event:klaviyo.>)
// but no webhook can receive it. It is dead-lettered once as bad_subject,
// in both consumption models, and the events around it are delivered.
func TestStraySubjectDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	sink := NewSink(t, testSecret)
	e.create("acme", sink.URL, topicSMS)

	good := e.publish(topicSMS+".acme", "before", 5)
	stray := topicSMS + ".acme.extra"
	e.publishRaw(stray, eventBody("stray-1"), "stray-1")
	e.publishRaw(topicSMS+".acme.extra.more", eventBody("stray-2"), "stray-2")
	good = append(good, e.publish(topicSMS+".acme", "after", 5)...)
	waitDelivered(t, sink, good, 30*time.Second)

	ctx := context.Background()
	var codes, subjects []string
	waitFor(t, 30*time.Second, "two stray events on the dead-letter stream", func() bool {
		codes, subjects = nil, nil
		cons, err := e.js.OrderedConsumer(ctx, "EVENTS_DEADLETTER", jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		for {
			m, err := cons.Next(jetstream.FetchMaxWait(500 * time.Millisecond))
			if err != nil {
				break
			}
			codes = append(codes, m.Headers().Get(dispatcher.HeaderCode))
			subjects = append(subjects, m.Headers().Get(dispatcher.HeaderSubject))
		}
		return len(codes) >= 2
	})
	want := map[string]bool{stray: true, topicSMS + ".acme.extra.more": true}
	if len(codes) != 2 {
		t.Fatalf("dead letters %v on %v, want exactly two", codes, subjects)
	}
	for i := range codes {
		if codes[i] != "bad_subject" || !want[subjects[i]] {
			t.Errorf("dead letter %d: code %q subject %q, want bad_subject on one of %v", i, codes[i], subjects[i], want)
		}
		delete(want, subjects[i])
	}
	if got := sink.Delivered(); got["stray-1"]+got["stray-2"] != 0 {
		t.Errorf("a stray event was delivered: %v", got)
	}
	waitFor(t, 30*time.Second, "the strays consumer with nothing pending or unacknowledged", func() bool {
		info := e.consumerInfo("EVENTS", "strays")
		return info != nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	var dl int64
	for _, d := range e.ds {
		dl += d.Stats().DeadLettered.Load()
	}
	if dl != 2 {
		t.Errorf("dead-lettered count = %d, want 2", dl)
	}
}
