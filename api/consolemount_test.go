package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/api/console"
	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/test/harness"
)

// Every console response carries the console's security headers, the
// redirect from /console to /console/ included: it is the console's, not
// the API's.
func TestConsoleRedirectCarriesSecurityHeaders(t *testing.T) {
	e := newEnv(t, func(c *api.Config) {
		rdb := harness.StartRedis(t).Client(t)
		keys, err := subscriptions.NewKeyring(map[string]string{keyA: accountA})
		if err != nil {
			t.Fatal(err)
		}
		con, err := console.New(console.Config{Store: subscriptions.New(rdb, subscriptions.Config{}), Keys: keys,
			Sessions: console.NewRedisSessions(rdb)})
		if err != nil {
			t.Fatal(err)
		}
		c.Console = con
	})
	req, err := http.NewRequestWithContext(context.Background(), "GET", e.srv.URL+"/console", nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/console/" {
		t.Errorf("GET /console = %d, Location %q; want 301 to /console/", res.StatusCode, res.Header.Get("Location"))
	}
	for name, want := range map[string]string{"Content-Security-Policy": console.ContentSecurityPolicy,
		"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if got := res.Header.Get(name); got != want {
			t.Errorf("GET /console: %s = %q, want %q", name, got, want)
		}
	}
}
