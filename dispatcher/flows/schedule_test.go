package flows

import (
	"net/http"
	"testing"
	"time"

	"github.com/webhookd/webhookd/dispatcher"
)

// The default schedule: 17 retries, the last inside 24 h of the first
// attempt, each wait at least as long as the one before.
func TestRetrySchedule(t *testing.T) {
	c := Config{}.withDefaults()
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now, prev := first, time.Duration(0)
	for attempt := 1; attempt <= MaxRetries; attempt++ {
		d, ok := c.retryDelay(attempt, 0, first, now)
		if !ok || d < prev {
			t.Fatalf("retryDelay(%d) = %v, %v; want a wait of at least %v", attempt, d, ok, prev)
		}
		prev, now = d, now.Add(d)
	}
	if total := now.Sub(first); total > 24*time.Hour || total < 22*time.Hour {
		t.Errorf("17th retry at %v after the first attempt, want within 24h (and near it)", total)
	}
	if _, ok := c.retryDelay(MaxRetries+1, 0, first, now); ok {
		t.Error("an 18th retry was scheduled")
	}
	if d, _ := c.retryDelay(1, 10*time.Minute, first, first); d != 10*time.Minute {
		t.Errorf("Retry-After 10m on attempt 1: wait %v, want 10m", d)
	}
	late := first.Add(23 * time.Hour)
	if d, _ := c.retryDelay(10, 5*time.Hour, first, late); late.Add(d).After(first.Add(24*time.Hour + 2*time.Hour + 20*time.Minute)) {
		t.Errorf("Retry-After past the window: wait %v", d)
	}
}

func TestClassifyStatus(t *testing.T) {
	for status, want := range map[int]verdict{200: vDelivered, 201: vDelivered, 204: vDelivered, 299: vDelivered,
		429: vRetry, 500: vRetry, 502: vRetry, 503: vRetry, 504: vRetry,
		301: vSkip, 400: vSkip, 401: vSkip, 404: vSkip, 410: vSkip, 501: vSkip, 505: vSkip} {
		resp := &http.Response{StatusCode: status, Header: http.Header{}}
		if got := classifyStatus(resp, "").verdict; got != want {
			t.Errorf("classifyStatus(%d) = %v, want %v", status, got, want)
		}
	}
	resp := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"7"}}}
	if r := classifyStatus(resp, ""); r.retryAfter != 7*time.Second {
		t.Errorf("Retry-After 7: %v", r.retryAfter)
	}
	if r := classifyErr(dispatcher.ErrBlockedAddress); r.verdict != vSkip {
		t.Errorf("blocked address: verdict %v, want skip", r.verdict)
	}
}

func TestEventSubject(t *testing.T) {
	for in, want := range map[string]string{
		"wp.3.event:klaviyo.placed_order.acct": "event:klaviyo.placed_order.acct",
		"event:klaviyo.placed_order":           "event:klaviyo.placed_order",
	} {
		if got := dispatcher.EventSubject(in); got != want {
			t.Errorf("EventSubject(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScrub(t *testing.T) {
	got := scrub(`{"echo":"Bearer s3cr3t-token","x":"abc"}`, map[string]string{"Authorization": "Bearer s3cr3t-token", "X": "abc"})
	if want := `{"echo":"[redacted]","x":"abc"}`; got != want {
		t.Errorf("scrub = %s, want %s", got, want)
	}
}
