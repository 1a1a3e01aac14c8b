package api_test

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/api/authlimit"
)

// from is e with requests sent from local address ip (any 127.x.y.z
// works on Linux), so that the server sees another client address.
func (e *env) from(ip string) *env {
	c := *e
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	c.client = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 30 * time.Second}
	return &c
}

// newAuthEnv is the API with a failed-authentication limit of burst
// bad keys per address (no refill within any test's run) and at most
// maxAddrs addresses; its log is returned.
func newAuthEnv(t *testing.T, burst, maxAddrs int) (*env, *authlimit.Limiter, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	lim := authlimit.New(authlimit.Config{Burst: burst, Refill: time.Hour, MaxAddresses: maxAddrs,
		Log: zerolog.New(logs)})
	return newEnv(t, func(c *api.Config) { c.AuthLimit = lim }), lim, logs
}

const badKey = "pk_wrong_wrong_wrong_wrong_wrong_00"

// Past its burst of bad keys an address gets 429 throttled with
// Retry-After, even for a good key (refused before it is checked);
// another address's good key still works, and the throttling is
// logged once, not per request.
func TestAuthLimitPerAddress(t *testing.T) {
	e, lim, logs := newAuthEnv(t, 3, 100)
	a := e.from("127.0.0.2")
	if res := a.do("GET", "/api/webhooks", keyA, ""); res.status != http.StatusOK {
		t.Fatalf("a good key first: status %d, want 200", res.status)
	}
	for i := range 3 {
		if res := a.do("GET", "/api/webhooks", badKey, ""); res.status != http.StatusUnauthorized {
			t.Fatalf("bad key %d of the burst: status %d, want 401", i+1, res.status)
		}
	}
	res := a.do("GET", "/api/webhooks", badKey, "")
	if res.status != http.StatusTooManyRequests {
		t.Fatalf("bad key 4 (burst 3): status %d %s, want 429", res.status, res.body)
	}
	e0 := res.doc(t)["errors"].([]any)[0].(map[string]any)
	if e0["code"] != "throttled" || e0["status"] != float64(429) ||
		!strings.Contains(e0["detail"].(string), "incorrect API key") {
		t.Errorf("429 error = %v, want code throttled naming the incorrect key", e0)
	}
	if p, _ := e0["source"].(map[string]any); p["pointer"] != "/data/" {
		t.Errorf("429 error source = %v, want pointer /data/", e0["source"])
	}
	if ra, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || ra < 1 || ra > 3600 {
		t.Errorf("Retry-After = %q, want 1-3600 seconds", res.header.Get("Retry-After"))
	}
	if res := a.do("GET", "/api/webhooks", keyA, ""); res.status != http.StatusTooManyRequests {
		t.Errorf("a good key from the throttled address: status %d, want 429 (not checked)", res.status)
	}
	if res := e.from("127.0.0.3").do("GET", "/api/webhooks", keyB, ""); res.status != http.StatusOK {
		t.Errorf("a good key from another address: status %d, want 200", res.status)
	}
	if res := a.do("GET", "/api/webhooks", "", ""); res.status != http.StatusUnauthorized {
		t.Errorf("no key at all from the throttled address: status %d, want 401", res.status)
	}
	st := lim.Stats()
	if got := st.Failures.Load(); got != 3 {
		t.Errorf("Failures = %d, want 3", got)
	}
	if got := st.Throttled.Load(); got != 2 {
		t.Errorf("Throttled = %d, want 2", got)
	}
	if n := strings.Count(logs.String(), "authentication throttled"); n != 1 {
		t.Errorf("%d throttle log lines for 2 refusals within a minute, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `"client":"127.0.0.2/32"`) {
		t.Errorf("the throttle line does not name the address: %s", logs)
	}
	if strings.Contains(logs.String(), badKey) || strings.Contains(e.log.String(), badKey) {
		t.Error("a key reached the log")
	}
}

// An attacker rotating addresses does not grow the table past its
// bound; the addresses it forgot are counted.
func TestAuthLimitMemoryBound(t *testing.T) {
	e, lim, _ := newAuthEnv(t, 2, 5)
	for i := range 20 {
		ip := fmt.Sprintf("127.0.1.%d", i+1)
		if res := e.from(ip).do("GET", "/api/webhooks", badKey, ""); res.status != http.StatusUnauthorized {
			t.Fatalf("first bad key from %s: status %d, want 401", ip, res.status)
		}
		if n := lim.Len(); n > 5 {
			t.Fatalf("after %d addresses the table holds %d, want at most 5", i+1, n)
		}
	}
	if n, ev := lim.Len(), lim.Stats().Evicted.Load(); n != 5 || ev != 15 {
		t.Errorf("table %d, evicted %d; want 5 and 15", n, ev)
	}
	// The most recent addresses are the ones kept.
	last := e.from("127.0.1.20")
	if res := last.do("GET", "/api/webhooks", badKey, ""); res.status != http.StatusUnauthorized {
		t.Fatalf("second bad key from the newest address: status %d, want 401", res.status)
	}
	if res := last.do("GET", "/api/webhooks", badKey, ""); res.status != http.StatusTooManyRequests {
		t.Errorf("third bad key from the newest address (burst 2): status %d, want 429", res.status)
	}
}
