package test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape returns the samples of a Prometheus text page as
// "name{labels}" -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// --metrics-addr serves Prometheus metrics that count what was delivered
// and how requests ended, and the pprof index.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := e.startWebhookd("--metrics-addr", "127.0.0.1:0")
	base := "http://" + p.logLine(t, "metrics and pprof serving")["addr"].(string)

	ok := NewSink(t, testSecret)
	failing := NewSink(t, testSecret)
	failing.Respond = func(int64, *Request) int { return http.StatusServiceUnavailable }
	e.create("default", ok.URL, topicSMS)
	e.create("default", failing.URL, topicSMS)
	ids := e.publish(topicSMS, "metrics", 50)
	waitDelivered(t, ok, ids, 30*time.Second)
	waitFor(t, 10*time.Second, "a failed request", func() bool { return len(failing.Requests()) > 0 })

	var m map[string]float64
	waitFor(t, 10*time.Second, "metrics to count the deliveries", func() bool {
		m = scrape(t, base+"/metrics")
		return m["webhookd_events_delivered_total"] >= 50 && m[`webhookd_requests_total{outcome="status_5xx"}`] >= 1
	})
	if got := m[`webhookd_requests_total{outcome="success"}`]; got < 1 {
		t.Errorf(`webhookd_requests_total{outcome="success"} = %v, want ≥ 1`, got)
	}
	if got := m[`webhookd_request_events_total{outcome="success"}`]; got < 50 {
		t.Errorf(`webhookd_request_events_total{outcome="success"} = %v, want ≥ 50`, got)
	}
	if got := m["webhookd_webhooks_active"]; got != 2 {
		t.Errorf("webhookd_webhooks_active = %v, want 2", got)
	}
	if _, ok := m[`webhookd_requests_total{outcome="timeout"}`]; !ok {
		t.Error("outcome series are not all present from the start")
	}
	resp, err := http.Get(base + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /debug/pprof/: status %d, want 200", resp.StatusCode)
	}
}
