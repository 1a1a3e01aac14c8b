package api_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/api/authlimit"
	"github.com/webhookd/webhookd/api/clientaddr"
)

// proxyAddr is the address the reverse proxy of behindProxy dials the
// API from: the one trusted proxy.
const proxyAddr = "127.0.0.10"

// behindProxy returns e reached through a real httputil.ReverseProxy
// on 127.0.0.1, which dials the API from proxyAddr and appends each
// client's address to X-Forwarded-For.
func behindProxy(t *testing.T, e *env) *env {
	t.Helper()
	target, err := url.Parse(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(proxyAddr)}, Timeout: 10 * time.Second}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{DialContext: d.DialContext}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	p := *e
	p.srv = srv
	return &p
}

// Behind a trusted proxy each client has its own failed-authentication
// bucket (the address the proxy put in X-Forwarded-For), while a client
// reaching the API directly is counted by its TCP peer whatever
// X-Forwarded-For it sends.
func TestAuthLimitBehindTrustedProxy(t *testing.T) {
	logs := &logBuffer{}
	proxies, err := clientaddr.Parse([]string{proxyAddr})
	if err != nil {
		t.Fatal(err)
	}
	lim := authlimit.New(authlimit.Config{Burst: 2, Refill: time.Hour, Proxies: proxies, Log: zerolog.New(logs)})
	e := newEnv(t, func(c *api.Config) { c.AuthLimit = lim })
	proxied := behindProxy(t, e)
	a, b := proxied.from("127.0.0.2"), proxied.from("127.0.0.3")

	for i := range 2 {
		if res := a.do("GET", "/api/webhooks", badKey, ""); res.status != http.StatusUnauthorized {
			t.Fatalf("client A's bad key %d through the proxy: status %d, want 401", i+1, res.status)
		}
	}
	if res := a.do("GET", "/api/webhooks", keyA, ""); res.status != http.StatusTooManyRequests {
		t.Fatalf("client A past its burst through the proxy: status %d, want 429", res.status)
	}
	if res := b.do("GET", "/api/webhooks", keyB, ""); res.status != http.StatusOK {
		t.Errorf("client B's good key through the same proxy: status %d, want 200 (its own bucket)", res.status)
	}
	if res := b.do("GET", "/api/webhooks", badKey, ""); res.status != http.StatusUnauthorized {
		t.Errorf("client B's first bad key through the proxy: status %d, want 401", res.status)
	}
	if !strings.Contains(logs.String(), `"client":"127.0.0.2/32"`) {
		t.Errorf("the throttle line does not name client A: %s", logs)
	}

	// A direct client is not a trusted proxy: a new X-Forwarded-For on
	// every request does not give it a new bucket, nor spend client B's.
	direct := e.from("127.0.0.4")
	for i := range 3 {
		want := http.StatusUnauthorized
		if i == 2 {
			want = http.StatusTooManyRequests
		}
		res := direct.doHeaders("GET", "/api/webhooks", "", map[string]string{
			"Authorization":   "Klaviyo-API-Key " + badKey,
			"X-Forwarded-For": fmt.Sprintf("127.0.0.3, 198.51.100.%d", i+1),
		}, false)
		if res.status != want {
			t.Fatalf("direct client's bad key %d with a spoofed X-Forwarded-For: status %d, want %d", i+1, res.status, want)
		}
	}
	if res := b.do("GET", "/api/webhooks", keyB, ""); res.status != http.StatusOK {
		t.Errorf("client B after the direct client named it: status %d, want 200", res.status)
	}
	// A, B and the direct client; never the proxy's own address.
	if n := lim.Len(); n != 3 {
		t.Errorf("the limit tracks %d addresses, want 3 (A, B, the direct client)", n)
	}
	if strings.Contains(logs.String(), proxyAddr) {
		t.Errorf("the proxy's address was counted: %s", logs)
	}
	if got := lim.Stats().BadForwarded.Load(); got != 0 {
		t.Errorf("BadForwarded = %d, want 0", got)
	}
}
