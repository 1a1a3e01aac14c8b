package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/dispatcher"
)

// Events that are not JSON or have no id go to the dead-letter subject
// with a reason, once even when two webhooks meet them, and never block
// the good events around them.
func TestDeadLetter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	s1, s2 := NewSink(t, testSecret), NewSink(t, testSecret)
	e.create("default", s1.URL, topicSMS)
	e.create("default", s2.URL, topicSMS)

	good := e.publish(topicSMS, "good-a", 5)
	e.publishRaw(topicSMS, []byte(`{"data": not json`), "bad-json")
	e.publishRaw(topicSMS, []byte(`{"data":{"type":"event"}}`), "") // no data.id, no Nats-Msg-Id
	good = append(good, e.publish(topicSMS, "good-b", 5)...)
	waitDelivered(t, s1, good, 10*time.Second)
	waitDelivered(t, s2, good, 10*time.Second)

	cons, err := e.js.OrderedConsumer(context.Background(), "EVENTS_DEADLETTER", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			break
		}
		reasons[m.Headers().Get(dispatcher.HeaderCode)] = m.Headers().Get(dispatcher.HeaderReason)
		if got := m.Headers().Get(dispatcher.HeaderSubject); got != topicSMS {
			t.Errorf("dead letter subject header = %q, want %q", got, topicSMS)
		}
	}
	if len(reasons) != 2 || reasons["not_json"] == "" || reasons["no_id"] == "" {
		t.Errorf("dead letters = %v, want one not_json and one no_id, each with a reason", reasons)
	}
	info, err := e.js.Stream(context.Background(), "EVENTS_DEADLETTER")
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 2 {
		t.Errorf("dead-letter stream holds %d messages, want 2 (one per bad event)", n)
	}
	var dl int64
	for _, d := range e.ds {
		dl += d.Stats().DeadLettered.Load()
	}
	if dl != 2 {
		t.Errorf("dead-lettered count = %d, want 2", dl)
	}
}

// An event too large for any request body goes to the dead-letter subject
// as too_large; smaller ones around it are delivered.
func TestOversizedEventDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *dispatcher.Config) { c.BatchMaxBytes = 4096 })
	e.startDispatcher()
	sink := NewSink(t, testSecret)
	e.create("default", sink.URL, topicSMS)
	big := fmt.Appendf(nil, `{"data":{"type":"event","id":"big","attributes":{"blob":%q}}}`, strings.Repeat("x", 8000))
	e.publishRaw(topicSMS, big, "big")
	good := e.publish(topicSMS, "small", 20)
	waitDelivered(t, sink, good, 10*time.Second)
	if sink.Delivered()["big"] != 0 {
		t.Error("the oversized event was delivered")
	}
	for _, r := range sink.Requests() {
		if n := len(r.Events); n == 0 {
			t.Error("empty request")
		}
	}
	waitFor(t, 5*time.Second, "the too_large dead letter", func() bool {
		st, err := e.js.Stream(context.Background(), "EVENTS_DEADLETTER")
		if err != nil {
			return false
		}
		m, err := st.GetLastMsgForSubject(context.Background(), "webhookd.deadletter.too_large")
		return err == nil && m.Header.Get(dispatcher.HeaderSubject) == topicSMS
	})
}
