package authlimit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"
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
