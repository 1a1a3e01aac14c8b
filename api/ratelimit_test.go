package api_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/webhookd/webhookd/api"
)

// Past its burst an account gets Klaviyo's 429 "throttled" with
// Retry-After; other accounts are unaffected; every answer carries the
// RateLimit-* headers.
func TestRateLimitPerAccount(t *testing.T) {
	// 0.2/s: a token every 5 s, so the test cannot refill it by being slow.
	e := newEnv(t, func(c *api.Config) { c.RateLimit = 0.2; c.RateBurst = 3 })
	for i := range 3 {
		res := e.do("GET", "/api/webhooks", keyA, "")
		if res.status != http.StatusOK {
			t.Fatalf("request %d within the burst: status %d, want 200", i+1, res.status)
		}
		if got, want := res.header.Get("RateLimit-Remaining"), strconv.Itoa(2-i); got != want {
			t.Errorf("request %d: RateLimit-Remaining = %q, want %q", i+1, got, want)
		}
		if got := res.header.Get("RateLimit-Limit"); got != "3" {
			t.Errorf("RateLimit-Limit = %q, want 3", got)
		}
	}
	res := e.do("GET", "/api/webhooks", keyA, "")
	if res.status != http.StatusTooManyRequests {
		t.Fatalf("request past the burst: status %d, want 429", res.status)
	}
	errs := res.doc(t)["errors"].([]any)
	e0 := errs[0].(map[string]any)
	if e0["code"] != "throttled" || e0["title"] != "Request was throttled." || e0["status"] != float64(429) {
		t.Errorf("429 error = %v, want code throttled, title, status 429", e0)
	}
	if ra, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || ra < 1 || ra > 5 {
		t.Errorf("Retry-After = %q, want 1-5 seconds", res.header.Get("Retry-After"))
	}
	if res := e.do("GET", "/api/webhooks", keyB, ""); res.status != http.StatusOK {
		t.Errorf("another account: status %d, want 200 (buckets are per account)", res.status)
	}
	if res := e.do("GET", "/api/webhooks", "pk_unknown_key_0000000000000000", ""); res.status != http.StatusUnauthorized {
		t.Errorf("unknown key: status %d, want 401 before any rate limit", res.status)
	}
}

// Without a limit configured there are no RateLimit headers and no 429.
func TestRateLimitOff(t *testing.T) {
	e := newEnv(t, nil)
	for range 30 {
		if res := e.do("GET", "/api/webhooks", keyA, ""); res.status != http.StatusOK || res.header.Get("RateLimit-Limit") != "" {
			t.Fatalf("status %d, RateLimit-Limit %q; want 200 and no header", res.status, res.header.Get("RateLimit-Limit"))
		}
	}
}
