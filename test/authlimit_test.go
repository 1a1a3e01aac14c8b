package test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// clientFrom is an HTTP client whose connections come from local
// address ip (any 127.x.y.z on Linux), with a cookie jar and no
// redirects followed.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	jar, _ := cookiejar.New(nil)
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// send makes one request and returns its status, headers and body.
func send(t *testing.T, c *http.Client, method, url, contentType, body string, header http.Header) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(b)
}

// `webhookd serve --auth-fail-burst 2`: the API and the console's
// sign-in share one bucket per client address; past it both answer 429
// with Retry-After, a good key from another address still works, and
// /metrics counts the refusals.
func TestAuthFailuresLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := e.startWebhookd("--api-key", testKey+"=default", "--auth-fail-burst", "2", "--auth-fail-refill", "1h",
		"--metrics-addr", "127.0.0.1:0")
	base := p.apiURL(t)
	bad := http.Header{"Authorization": {"Klaviyo-API-Key pk_wrong_0123456789abcdef"}}
	good := http.Header{"Authorization": {"Klaviyo-API-Key " + testKey}}
	attacker := clientFrom("127.0.0.2")

	if code, _, _ := send(t, attacker, "GET", base+"/api/webhooks", "", "", bad); code != http.StatusUnauthorized {
		t.Fatalf("bad key 1 = %d, want 401", code)
	}
	// The second bad key through the console's sign-in form, loaded
	// afresh for each try (its token is the browser's).
	signIn := func(key string) (int, http.Header, string) {
		_, _, form := send(t, attacker, "GET", base+"/console/", "", "", nil)
		csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(form)
		if csrf == nil {
			t.Fatalf("no sign-in form: %s", form)
		}
		return send(t, attacker, "POST", base+"/console/login", "application/x-www-form-urlencoded",
			url.Values{"key": {key}, "csrf": {csrf[1]}}.Encode(), nil)
	}
	if code, _, _ := signIn("pk_wrong_0123456789abcdef"); code != http.StatusUnauthorized {
		t.Fatalf("bad key 2 at sign-in = %d, want 401", code)
	}
	code, h, page := signIn(testKey)
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.Contains(page, "Too many sign-ins with a wrong key") {
		t.Errorf("a good key at sign-in past the burst = %d (Retry-After %q), want 429 and the form saying why", code, h.Get("Retry-After"))
	}
	code, h, body := send(t, attacker, "GET", base+"/api/webhooks", "", "", bad)
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.Contains(body, `"code":"throttled"`) {
		t.Errorf("bad key 3 on the API = %d (Retry-After %q) %s, want 429 throttled", code, h.Get("Retry-After"), body)
	}
	if code, _, _ := send(t, clientFrom("127.0.0.3"), "GET", base+"/api/webhooks", "", "", good); code != http.StatusOK {
		t.Errorf("a good key from another address = %d, want 200", code)
	}

	var m map[string]float64
	waitFor(t, 10*time.Second, "the auth metrics", func() bool {
		m = scrape(t, p.metricsURL(t))
		return m["webhookd_auth_throttled_total"] >= 2
	})
	if m["webhookd_auth_failures_total"] != 2 || m["webhookd_auth_throttled_total"] != 2 || m["webhookd_auth_addresses"] != 1 {
		t.Errorf("auth metrics = failures %v, throttled %v, addresses %v; want 2, 2, 1", m["webhookd_auth_failures_total"],
			m["webhookd_auth_throttled_total"], m["webhookd_auth_addresses"])
	}
	if line := p.logLine(t, "authentication throttled: too many bad keys from this address"); line["client"] != "127.0.0.2/32" {
		t.Errorf("the throttle log line names %v, want 127.0.0.2/32", line["client"])
	}
	if n := strings.Count(p.out.String(), "authentication throttled"); n != 1 {
		t.Errorf("%d throttle log lines for 2 refusals within a minute, want 1", n)
	}
}
