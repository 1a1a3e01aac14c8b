package console_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/api/authlimit"
	"github.com/webhookd/webhookd/api/console"
)

// browserFrom is a browser whose connections come from local address
// ip (any 127.x.y.z on Linux): another client address to the server.
func (e *env) browserFrom(ip string) *browser {
	b := e.browser()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	b.c.Transport = &http.Transport{DialContext: d.DialContext}
	return b
}

// Good sign-ins spend nothing; past the burst of bad keys the sign-in
// form answers 429 with Retry-After and says why, for a good key too;
// the API shares the limit; another address still signs in.
func TestSignInFailuresLimitedPerAddress(t *testing.T) {
	lim := authlimit.New(authlimit.Config{Burst: 2, Refill: time.Hour, Log: zerolog.New(io.Discard)})
	e := newEnv(t, func(c *console.Config, a *api.Config) { c.AuthLimit = lim; a.AuthLimit = lim })
	for range 4 {
		e.browserFrom("127.0.0.2").signIn(keyA)
	}
	b := e.browserFrom("127.0.0.2")
	for i := range 2 {
		b.get("/console/")
		if p := b.post("/console/login", url.Values{"key": {"pk_nope"}}); p.status != http.StatusUnauthorized {
			t.Fatalf("bad key %d of the burst = %d, want 401", i+1, p.status)
		}
	}
	b.get("/console/")
	p := b.post("/console/login", url.Values{"key": {"pk_nope"}})
	if p.status != http.StatusTooManyRequests {
		t.Fatalf("bad key 3 (burst 2) = %d, want 429", p.status)
	}
	if ra, err := strconv.Atoi(p.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After = %q, want seconds", p.header.Get("Retry-After"))
	}
	if !strings.Contains(p.body, "Too many sign-ins with a wrong key from your address") || !strings.Contains(p.body, `name="key"`) {
		t.Errorf("the 429 is not the sign-in form saying why: %s", p.body)
	}
	if sessionCookie(p) != nil {
		t.Error("a throttled sign-in set a session cookie")
	}
	if p := b.post("/console/login", url.Values{"key": {keyA}}); p.status != http.StatusTooManyRequests {
		t.Errorf("a good key from the throttled address = %d, want 429 (refused before it is checked)", p.status)
	}
	// The API's bad-key answers draw from the same bucket.
	if code := e.apiStatus(b.c, "pk_nope"); code != http.StatusTooManyRequests {
		t.Errorf("API call with a bad key from the throttled address = %d, want 429", code)
	}
	e.browserFrom("127.0.0.3").signIn(keyB)
	if got := lim.Stats().Failures.Load(); got != 2 {
		t.Errorf("Failures = %d, want 2 (good sign-ins count nothing)", got)
	}
}
