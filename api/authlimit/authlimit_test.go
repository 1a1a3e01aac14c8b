package authlimit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api/clientaddr"
)

// The bucket refills one bad key per Refill, up to Burst; an IPv6 /64
// is one address; the wait says when the next key is allowed.
func TestRefillAndIPv6Prefix(t *testing.T) {
	l := New(Config{Burst: 2, Refill: 10 * time.Second, Log: zerolog.New(io.Discard)})
	t0 := time.Unix(1_700_000_000, 0)
	req := func(addr string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = addr
		return r
	}
	a1, a2 := req("[2001:db8:1:2::1]:5000"), req("[2001:db8:1:2:ffff::9]:6000")
	l.Failed(a1, t0)
	l.Failed(a2, t0) // the same /64
	if got := l.Wait(a1, t0); got != 10*time.Second {
		t.Errorf("Wait after the burst = %v, want 10s", got)
	}
	if got := l.Wait(req("[2001:db8:1:3::1]:5000"), t0); got != 0 {
		t.Errorf("Wait of another /64 = %v, want 0", got)
	}
	if got := l.Wait(a1, t0.Add(4*time.Second)); got != 6*time.Second {
		t.Errorf("Wait 4s later = %v, want 6s", got)
	}
	if got := l.Wait(a1, t0.Add(10*time.Second)); got != 0 {
		t.Errorf("Wait after one refill = %v, want 0", got)
	}
	l.Failed(a1, t0.Add(10*time.Second))
	if got := l.Wait(a1, t0.Add(10*time.Second)); got != 10*time.Second {
		t.Errorf("Wait after spending the refilled key = %v, want 10s", got)
	}
	if got := l.Wait(req("not-an-address"), t0); got != 0 {
		t.Errorf("Wait of an unparsable peer = %v, want 0", got)
	}
}

// Through a trusted proxy the bucket is the forwarded client's; an
// unusable X-Forwarded-For counts by the proxy's address, is counted,
// and is logged once a minute, not per request.
func TestProxiesAndBadForwarded(t *testing.T) {
	logs := &strings.Builder{}
	proxies, err := clientaddr.Parse([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	l := New(Config{Burst: 1, Refill: time.Hour, Proxies: proxies, Log: zerolog.New(logs)})
	t0 := time.Unix(1_700_000_000, 0)
	req := func(xff string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "10.0.0.5:4000"
		r.Header.Set("X-Forwarded-For", xff)
		return r
	}
	l.Failed(req("203.0.113.9"), t0)
	if got := l.Wait(req("203.0.113.9"), t0); got != time.Hour {
		t.Errorf("Wait of the forwarded client after its burst = %v, want 1h", got)
	}
	if got := l.Wait(req("203.0.113.10"), t0); got != 0 {
		t.Errorf("Wait of another client of the same proxy = %v, want 0", got)
	}
	for range 3 {
		l.Failed(req("garbage"), t0)
		if got := l.Wait(req("garbage"), t0); got != time.Hour {
			t.Errorf("Wait of an unusable X-Forwarded-For after the proxy's burst = %v, want 1h", got)
		}
	}
	if got := l.Stats().BadForwarded.Load(); got != 3 {
		t.Errorf("BadForwarded = %d, want 3 (one per Wait)", got)
	}
	if n := strings.Count(logs.String(), "X-Forwarded-For from a trusted proxy"); n != 1 {
		t.Errorf("%d lines about the unusable X-Forwarded-For within a minute, want 1:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), "garbage") {
		t.Errorf("the header's text reached the log: %s", logs)
	}
}
