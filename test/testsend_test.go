package test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/signer"
)

// A test send delivers one signed, clearly marked synthetic event now and
// answers with its attempt; its outcome neither enters nor clears the
// webhook's error state.
func TestTestSend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *dispatcher.Config) {
		c.BackoffBase = time.Hour // a failed live batch keeps the webhook in error for the whole test
		c.BackoffMax = time.Hour
	})
	d := e.startDispatcher()
	var status atomic.Int64
	status.Store(http.StatusOK)
	var got atomic.Pointer[string]
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := signer.Verify([]byte(testSecret), body, r.Header.Get("Klaviyo-Timestamp"), r.Header.Get("Klaviyo-Signature")); err != nil {
			t.Errorf("test send signature: %v", err)
		}
		s := string(body)
		got.Store(&s)
		w.WriteHeader(int(status.Load()))
		_, _ = io.WriteString(w, "receiver says hello "+strings.Repeat("x", 2000))
	}))
	t.Cleanup(recv.Close)
	w := e.create("default", recv.URL+"/hook", topicSMS)
	base := e.apiServerFor(d, "default")

	send := func() map[string]any {
		t.Helper()
		var doc apiDoc
		if st := call(t, "POST", base+"/webhookd/webhooks/"+w.ID+"/test", "", &doc); st != 200 || doc.Data.Type != "webhook-attempt" {
			t.Fatalf("POST test: status %d, %+v, errors %+v; want 200 and a webhook-attempt", st, doc.Data, doc.Errors)
		}
		return doc.Data.Attributes
	}
	a := send()
	if a["outcome"] != "delivered" || a["status"] != float64(200) || a["trigger"] != "test" || a["error_class"] != nil {
		t.Errorf("test send to a 200 endpoint: %v", a)
	}
	if ex, _ := a["response_excerpt"].(string); !strings.HasPrefix(ex, "receiver says hello") || len(ex) > 1024 {
		t.Errorf("response_excerpt = %.40q… (%d bytes), want the body's first ≤ 1 KiB", ex, len(ex))
	}
	ids, _ := a["external_ids"].([]any)
	if len(ids) != 1 || !strings.HasPrefix(ids[0].(string), "test-") {
		t.Errorf("external_ids = %v, want one test-<uuid>", a["external_ids"])
	}
	if b := got.Load(); b == nil || !strings.Contains(*b, `"topic":"webhookd.test"`) || !strings.Contains(*b, `"test":true`) ||
		!strings.Contains(*b, ids[0].(string)) {
		t.Errorf("test send body %v, want topic webhookd.test, \"test\":true and its external id", b)
	}
	if st := e.get(w).State; !st.ErrorSince.IsZero() || st.ConsecutiveFailures != 0 {
		t.Errorf("after a test send: %+v, want no error state", st)
	}

	// A failing test send does not put a healthy webhook in error.
	status.Store(http.StatusInternalServerError)
	a = send()
	if a["outcome"] != "failed" || a["status"] != float64(500) || a["error_class"] != "server_error" {
		t.Errorf("test send to a 500 endpoint: %v", a)
	}
	if st := e.get(w).State; !st.ErrorSince.IsZero() || st.LastError != "" {
		t.Errorf("after a failed test send: %+v, want the error state untouched", st)
	}

	// A webhook in error stays in error after a successful test send,
	// and the test send does not wait for its hour of backoff.
	e.publish(topicSMS, "fails", 1)
	waitFor(t, 15*time.Second, "the webhook in error", func() bool { return !e.get(w).State.ErrorSince.IsZero() })
	before := e.get(w).State
	status.Store(http.StatusOK)
	if a := send(); a["outcome"] != "delivered" {
		t.Errorf("test send while in error: %v, want delivered", a)
	}
	if st := e.get(w).State; !st.ErrorSince.Equal(before.ErrorSince) || st.ConsecutiveFailures != before.ConsecutiveFailures {
		t.Errorf("after a test send while in error: %+v, want %+v", st, before)
	}
}

// A test send takes one of the webhook's request slots: with every slot
// held by live traffic it answers 429 with Retry-After instead of
// exceeding --max-in-flight.
func TestTestSendRespectsInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *dispatcher.Config) {
		c.MaxInFlight = 1
		c.DeliveryTimeout = 20 * time.Second
		c.Lease = dispatcher.MinLease(c.DeliveryTimeout, c.BatchLinger)
	})
	d := e.startDispatcher()
	sink := NewSink(t, testSecret)
	release := make(chan struct{})
	var held atomic.Int64
	sink.Respond = func(_ int64, r *Request) int {
		if len(r.Events) > 0 && r.Events[0].Topic == topicSMS {
			held.Add(1)
			<-release
		}
		return http.StatusOK
	}
	w := e.create("default", sink.URL, topicSMS)
	base := e.apiServerFor(d, "default")
	ids := e.publish(topicSMS, "held", 1)
	waitFor(t, 15*time.Second, "the live request held", func() bool { return held.Load() == 1 })

	req, err := http.NewRequestWithContext(t.Context(), "POST", base+"/webhookd/webhooks/"+w.ID+"/test/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Klaviyo-API-Key "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("test send with every slot taken: status %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if p := sink.Peak(); p > 1 {
		t.Errorf("receiver saw %d requests at once, want at most 1", p)
	}
	close(release)
	waitDelivered(t, sink, ids, 15*time.Second)
}
