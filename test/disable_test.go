package test

import (
	"net/http"
	"testing"
	"time"

	"github.com/webhookd/webhookd/dispatcher"
)

// A webhook failing longer than DisableAfter ends enabled=false with a
// reason; re-enabled, it receives only events published after that.
func TestDisableAfterAndReenable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *dispatcher.Config) {
		c.DisableAfter = 1500 * time.Millisecond
		c.BackoffBase = 100 * time.Millisecond
		c.BackoffMax = 300 * time.Millisecond
	})
	e.startDispatcher()
	sink, healthy := newFailingSink(t, http.StatusServiceUnavailable)
	w := e.create("default", sink.URL, topicSMS)
	e.publish(topicSMS, "doomed", 50)

	waitFor(t, 20*time.Second, "the webhook disabled", func() bool { return !e.get(w).Enabled })
	st := e.get(w).State
	if st.DisabledAt.IsZero() || st.DisabledReason == "" {
		t.Errorf("disabled webhook state = %+v, want disabled_at and a reason", st)
	}
	e.waitConsumer(w.ID, false) // the backlog is dropped with the consumer

	// The API shows it disabled, and why.
	base := e.apiServer()
	var doc struct {
		Data struct {
			Attributes map[string]any `json:"attributes"`
		} `json:"data"`
	}
	if st := call(t, "GET", base+"/api/webhooks/"+w.ID, "", &doc); st != 200 || doc.Data.Attributes["enabled"] != false {
		t.Errorf("GET webhook: status %d, enabled %v; want 200, false", st, doc.Data.Attributes["enabled"])
	}
	if st := call(t, "GET", base+"/webhookd/webhooks/"+w.ID+"/delivery-state", "", &doc); st != 200 || doc.Data.Attributes["disabled_reason"] == "" {
		t.Errorf("GET delivery-state: status %d, attributes %v; want 200 and a disabled_reason", st, doc.Data.Attributes)
	}

	// Re-enabled at once: active_since keeps microseconds, so events
	// stored in the re-enable's millisecond but before it are not new
	// (a fresh-clone CI run delivered 2 such events when it kept
	// milliseconds).
	e.publish(topicSMS, "while-disabled", 10)
	e.waitNoneInFlight(w.ID) // a request that took its slot before the disable may still come
	healthy.Store(true)
	patch := `{"data":{"type":"webhook","id":"` + w.ID + `","attributes":{"enabled":true}}}`
	if st := call(t, "PATCH", base+"/api/webhooks/"+w.ID, patch, &doc); st != 200 || doc.Data.Attributes["enabled"] != true {
		t.Fatalf("PATCH enabled=true: status %d, enabled %v; want 200, true", st, doc.Data.Attributes["enabled"])
	}
	e.waitConsumer(w.ID, true)
	after := e.publish(topicSMS, "after", 10)
	waitDelivered(t, sink, after, 15*time.Second)
	e.waitIdle(w.ID) // whatever the new consumer matched has arrived
	got := sink.Delivered()
	for _, prefix := range []string{"doomed", "while-disabled"} {
		if n := len(hasPrefix(got, prefix)); n != 0 {
			t.Errorf("%d %q events delivered after re-enable, want 0 (no backfill)", n, prefix)
		}
	}
	if w2 := e.get(w); !w2.Enabled || !w2.State.ErrorSince.IsZero() {
		t.Errorf("after re-enable: enabled=%v error_since=%v, want enabled and healthy", w2.Enabled, w2.State.ErrorSince)
	}
}

// A webhook whose retries are parked far in the future is still disabled
// once it has been in error for DisableAfter: the sweeper does it.
func TestSweeperDisablesWithoutTraffic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *dispatcher.Config) {
		c.DisableAfter = time.Second
		c.BackoffBase = time.Hour
		c.BackoffMax = time.Hour
	})
	e.startDispatcher()
	sink := NewSink(t, testSecret)
	sink.Respond = func(int64, *Request) int { return http.StatusInternalServerError }
	w := e.create("default", sink.URL, topicSMS)
	e.publish(topicSMS, "once", 1)
	waitFor(t, 10*time.Second, "the first failure", func() bool { return !e.get(w).State.ErrorSince.IsZero() })
	waitFor(t, 10*time.Second, "the sweeper to disable the webhook", func() bool { return !e.get(w).Enabled })
	if n := len(sink.Requests()); n != 1 {
		t.Errorf("%d requests, want 1 (the retry is an hour away)", n)
	}
}
