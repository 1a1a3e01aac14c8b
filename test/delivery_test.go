package test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/subscriptions"
)

// 2,500 events of two topics reach the endpoint in requests of at most
// 1,000 events, none lost, with mixed topics in one request. The topics
// alternate every 10 events, so any request of more than 10 mixes them
// however the machine's speed cuts the batches.
func TestBatchesOfAtMost1000(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	sink := NewSink(t, testSecret)
	w := e.create("default", sink.URL, topicSMS, topicClick)

	var ids []string
	for i := range 125 {
		ids = append(ids, e.publish(topicSMS, fmt.Sprintf("sms%d", i), 10)...)
		ids = append(ids, e.publish(topicClick+".default", fmt.Sprintf("click%d", i), 10)...)
	}
	waitDelivered(t, sink, ids, 30*time.Second)

	mixed := false
	for _, r := range sink.Requests() {
		if n := len(r.Events); n == 0 || n > 1000 {
			t.Errorf("request with %d events, want 1..1000", n)
		}
		topics := map[string]bool{}
		for _, ev := range r.Events {
			topics[ev.Topic] = true
		}
		mixed = mixed || len(topics) > 1
		if r.Meta.AccountID != "default" || r.Meta.WebhookID != w.ID || r.Meta.Version == "" || r.Meta.Timestamp == "" {
			t.Errorf("meta = %+v, want account default, webhook %s, version and timestamp", r.Meta, w.ID)
		}
	}
	if !mixed {
		t.Error("no request mixed the two topics")
	}
	if got := len(sink.Delivered()); got != len(ids) {
		t.Errorf("distinct events delivered = %d, want %d", got, len(ids))
	}
}

// A trickle of events is flushed as one request after the linger.
func TestTrickleFlushesAfterLinger(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *dispatcher.Config) { c.BatchLinger = 300 * time.Millisecond })
	e.startDispatcher()
	sink := NewSink(t, testSecret)
	e.create("default", sink.URL, topicSMS)

	ids := e.publish(topicSMS, "trickle", 3)
	waitDelivered(t, sink, ids, 10*time.Second)
	reqs := sink.Requests()
	if len(reqs) != 1 || len(reqs[0].Events) != 3 {
		t.Fatalf("got %d requests (first with %d events), want 1 request of 3 events", len(reqs), len(reqs[0].Events))
	}
	// The payload is embedded unchanged.
	if got, want := string(reqs[0].Events[0].Payload), string(eventBody(reqs[0].Events[0].ExternalID)); got != want {
		t.Errorf("payload = %s, want %s", got, want)
	}
}

// Three replicas share one webhook whose endpoint holds every request
// open: the endpoint sees exactly MaxInFlight requests at once, never more.
func TestMaxInFlightAcrossReplicas(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *dispatcher.Config) { c.BatchMaxEvents = 5 })
	for range 3 {
		e.startDispatcher()
	}
	sink := NewSink(t, testSecret)
	sink.Respond = func(int64, *Request) int {
		time.Sleep(300 * time.Millisecond)
		return http.StatusOK
	}
	e.create("default", sink.URL, topicSMS)
	ids := e.publish(topicSMS, "held", 400)
	waitDelivered(t, sink, ids, 60*time.Second)
	if got := sink.Peak(); got != 10 {
		t.Errorf("peak concurrent requests = %d, want exactly 10", got)
	}
}

// 204, a redirect (not followed) and a 6 s answer are failures: the
// events come again later and the failure is recorded.
func TestFailuresAreRetried(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		first      func() int
		wantStatus int
		wantError  string
	}{
		{"204", func() int { return http.StatusNoContent }, 204, "status 204"},
		{"302", func() int { return http.StatusFound }, 302, "status 302"},
		{"6s", func() int { time.Sleep(6 * time.Second); return http.StatusOK }, 0, "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *dispatcher.Config) { c.BackoffBase = time.Second })
			e.startDispatcher()
			sink := NewSink(t, testSecret)
			sink.Respond = func(n int64, r *Request) int {
				if n == 1 {
					return tc.first()
				}
				return http.StatusOK
			}
			w := e.create("default", sink.URL, topicSMS)
			ids := e.publish(topicSMS, "retry", 3)
			waitFor(t, 15*time.Second, "the first failure recorded", func() bool {
				return !e.get(w).State.ErrorSince.IsZero()
			})
			st := e.get(w).State
			if st.LastStatus != tc.wantStatus || st.LastError != tc.wantError {
				t.Errorf("state after failure: last_status %d, last_error %q; want %d, %q",
					st.LastStatus, st.LastError, tc.wantStatus, tc.wantError)
			}
			waitDelivered(t, sink, ids, 20*time.Second)
			// The held request is recorded when its handler returns, which
			// may be after the retry succeeded.
			waitFor(t, 10*time.Second, "the failed request and its retry recorded", func() bool {
				return len(sink.Requests()) >= 2
			})
			// The sink records a request before webhookd has read its answer.
			waitFor(t, 5*time.Second, "the error state cleared after a success", func() bool {
				return e.get(w).State.ErrorSince.IsZero()
			})
		})
	}
}

// Events on an account's subject reach only that account's webhooks; a
// bare topic belongs to the default account.
func TestAccountIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	sinkA, sinkB, sinkDef := NewSink(t, testSecret), NewSink(t, testSecret), NewSink(t, testSecret)
	ws := []subscriptions.Webhook{
		e.create("acctA", sinkA.URL, topicSMS),
		e.create("acctB", sinkB.URL, topicSMS),
		e.create("default", sinkDef.URL, topicSMS),
	}

	a := e.publish(topicSMS+".acctA", "a", 20)
	b := e.publish(topicSMS+".acctB", "b", 20)
	bare := e.publish(topicSMS, "bare", 20)
	waitDelivered(t, sinkA, a, 10*time.Second)
	waitDelivered(t, sinkB, b, 10*time.Second)
	waitDelivered(t, sinkDef, bare, 10*time.Second)
	// A consumer with nothing pending or unacknowledged has delivered
	// every event it matched, stray ones included.
	for _, w := range ws {
		e.waitIdle(w.ID)
	}
	for name, c := range map[string]struct {
		s    *Sink
		want string
	}{"acctA": {sinkA, "a-"}, "acctB": {sinkB, "b-"}, "default": {sinkDef, "bare-"}} {
		got := c.s.Delivered()
		if n := len(hasPrefix(got, c.want)); n != len(got) || n != 20 {
			t.Errorf("%s received %d events, %d of its own; want exactly its 20", name, len(got), n)
		}
		for _, r := range c.s.Requests() {
			if r.Meta.AccountID != name {
				t.Errorf("%s: meta.klaviyo_account_id = %q", name, r.Meta.AccountID)
			}
		}
	}
}

// Changing a webhook's topics takes effect within about a second.
func TestTopicChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	sink := NewSink(t, testSecret)
	w := e.create("default", sink.URL, topicSMS)
	waitDelivered(t, sink, e.publish(topicSMS, "before", 5), 10*time.Second)

	topics := []string{topicClick}
	if _, err := e.store.Update(context.Background(), "default", w.ID, subscriptions.Patch{Topics: &topics}); err != nil {
		t.Fatal(err)
	}
	e.waitFilters(w.ID, topicClick)
	sms := e.publish(topicSMS, "sms-after", 5)
	clicks := e.publish(topicClick, "click-after", 5)
	// The clicks, published after, arrive; once the consumer has nothing
	// pending or unacknowledged, any sms event it matched has arrived too.
	waitDelivered(t, sink, clicks, 10*time.Second)
	e.waitIdle(w.ID)
	got := sink.Delivered()
	for _, id := range sms {
		if got[id] > 0 {
			t.Errorf("%s delivered after the webhook left its topic", id)
		}
	}
}

// A deleted webhook receives nothing more and its consumer is gone. A
// witness webhook on the same topic receiving the events published after
// the delete (and then a marker) shows the dispatcher handled them.
func TestDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	sink, witnessSink := NewSink(t, testSecret), NewSink(t, testSecret)
	w := e.create("default", sink.URL, topicSMS)
	witness := e.create("default", witnessSink.URL, topicSMS)
	waitDelivered(t, sink, e.publish(topicSMS, "before", 5), 10*time.Second)
	if err := e.store.Delete(context.Background(), "default", w.ID); err != nil {
		t.Fatal(err)
	}
	e.waitConsumer(w.ID, false)
	after := e.publish(topicSMS, "after", 5)
	waitDelivered(t, witnessSink, append(after, e.publish(topicSMS, "marker", 1)...), 10*time.Second)
	e.waitIdle(witness.ID)
	if n := len(hasPrefix(sink.Delivered(), "after")); n != 0 {
		t.Errorf("%d events delivered after delete, want 0", n)
	}
	if _, err := e.js.Consumer(context.Background(), "EVENTS", "wh_"+w.ID); testPartitions() == 0 && err == nil {
		t.Error("the deleted webhook's consumer is back")
	}
}
