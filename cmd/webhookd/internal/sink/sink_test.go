package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/batcher"
	"github.com/webhookd/webhookd/cmd/webhookd/eventgen"
	"github.com/webhookd/webhookd/signer"
)

const (
	testSecret  = "whsec_test"
	testWebhook = "a8b890458b4bbfaa26d961471b83c101d6de23bd826e7e5173a15310985ec3cb"
	testTopic   = "event:klaviyo.sent_sms"
)

// testSink is a Sink serving on a loopback port.
type testSink struct {
	URL string // base URL, without a path
}

// startSink runs a Sink with cfg on 127.0.0.1:0 until the test ends,
// then stops it as SIGINT would and checks that Run returns nil.
func startSink(tb testing.TB, cfg Config) *testSink {
	tb.Helper()
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := New(cfg, zerolog.Nop())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run() = %v, want nil", err)
		}
	})
	return &testSink{URL: "http://" + ln.Addr().String()}
}

func (ts *testSink) stats(tb testing.TB) Summary {
	tb.Helper()
	return getStats(tb, http.MethodGet, ts.URL+"/stats")
}

func getStats(tb testing.TB, method, url string) Summary {
	tb.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%s %s = %s, want 200", method, url, resp.Status)
	}
	var m Summary
	dec := json.NewDecoder(resp.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	return m
}

// testEvents returns n generated ~1 KB events (with published_ns).
func testEvents(n int) []batcher.Event {
	g := eventgen.New(1024)
	evs := make([]batcher.Event, n)
	for i := range evs {
		e := g.Append(nil, time.Now())
		evs[i] = batcher.Event{ExternalID: e.ID, Topic: testTopic, Payload: e.JSON}
	}
	return evs
}

// envelope is the body webhookd would send to webhookID.
func envelope(webhookID string, evs []batcher.Event) []byte {
	return batcher.AppendEnvelope(nil, evs, batcher.Meta{
		AccountID: "abc123", WebhookID: webhookID, Timestamp: time.Now(), Version: batcher.Version,
	})
}

// deliver POSTs body to url signed with secret for webhookID, as
// webhookd does, and returns the status.
func deliver(ctx context.Context, url, webhookID, secret string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	signer.SetHeaders(req.Header, webhookID, []byte(secret), body, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	closeBody(resp)
	return resp.StatusCode, nil
}

// closeBody drains and closes a response body, so the connection is reused.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

func mustDeliver(tb testing.TB, url, webhookID, secret string, body []byte, want int) {
	tb.Helper()
	got, err := deliver(context.Background(), url, webhookID, secret, body)
	if err != nil || got != want {
		tb.Fatalf("POST %s = %d, %v; want %d", url, got, err, want)
	}
}

func TestSinkCountsSignedBatch(t *testing.T) {
	ts := startSink(t, Config{Secrets: []string{testSecret}})
	evs := testEvents(3)
	mustDeliver(t, ts.URL+"/hook", testWebhook, testSecret, envelope(testWebhook, evs), http.StatusOK)

	got := ts.stats(t)
	want := Summary{
		Requests: 1, Batches: 1, Events: 3, UniqueEvents: 3, MaxBatchEvents: 3, PeakInFlight: 1,
		Topics: map[string]int64{testTopic: 3}, Webhooks: map[string]int64{testWebhook: 3},
	}
	if got.Latency == nil || got.Latency.Count != 3 || got.Latency.Max <= 0 || got.Latency.Max > 60_000 {
		t.Errorf("latency_ms = %+v, want 3 samples of under a minute", got.Latency)
	}
	ignore := func(s Summary) Summary {
		s.Latency, s.ElapsedSeconds, s.EventsPerSecond = nil, 0, 0
		return s
	}
	if diff := cmp.Diff(want, ignore(got)); diff != "" {
		t.Errorf("stats mismatch (-want +got):\n%s", diff)
	}
}

func TestSinkRefuses(t *testing.T) {
	ts := startSink(t, Config{Secrets: []string{testSecret}, MaxBody: 64 << 10})
	body := envelope(testWebhook, testEvents(2))
	post := func(t *testing.T, header http.Header, body []byte) int {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, ts.URL+"/hook", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		closeBody(resp)
		return resp.StatusCode
	}
	signed := func(webhookID, secret string, body []byte) http.Header {
		h := http.Header{}
		signer.SetHeaders(h, webhookID, []byte(secret), body, time.Now())
		return h
	}
	for _, tt := range []struct {
		name   string
		header http.Header
		body   []byte
		status int
		field  func(Summary) int64
	}{
		{"wrong secret", signed(testWebhook, "other", body), body, 401, func(s Summary) int64 { return s.BadSignatures }},
		{"no signature", http.Header{signer.HeaderWebhookID: {testWebhook}}, body, 401, func(s Summary) int64 { return s.BadSignatures }},
		{"tampered body", signed(testWebhook, testSecret, body), append([]byte(" "), body...), 401, func(s Summary) int64 { return s.BadSignatures }},
		{"header differs from meta", signed("other", testSecret, body), body, 400, func(s Summary) int64 { return s.Mismatches }},
		{"not JSON", signed(testWebhook, testSecret, []byte("{")), []byte("{"), 400, func(s Summary) int64 { return s.Malformed }},
		{"over MaxBody", signed(testWebhook, testSecret, make([]byte, 65<<10)), make([]byte, 65<<10), 413, func(s Summary) int64 { return s.Malformed }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.field(ts.stats(t))
			if got := post(t, tt.header, tt.body); got != tt.status {
				t.Errorf("POST = %d, want %d", got, tt.status)
			}
			st := ts.stats(t)
			if got := tt.field(st) - before; got != 1 {
				t.Errorf("counter went up by %d, want 1", got)
			}
			if st.Events != 0 {
				t.Errorf("events = %d, want 0", st.Events)
			}
		})
	}
}

func TestSinkDuplicates(t *testing.T) {
	ts := startSink(t, Config{Secrets: []string{testSecret}})
	evs := testEvents(4)
	mustDeliver(t, ts.URL+"/a", testWebhook, testSecret, envelope(testWebhook, evs[:3]), 200)
	mustDeliver(t, ts.URL+"/a", testWebhook, testSecret, envelope(testWebhook, evs[1:]), 200) // 2 repeats, 1 new
	mustDeliver(t, ts.URL+"/b", "other", testSecret, envelope("other", evs[:1]), 200)         // another webhook: not a repeat

	st := ts.stats(t)
	if st.Events != 7 || st.UniqueEvents != 5 || st.Duplicates != 2 {
		t.Errorf("events, unique, duplicates = %d, %d, %d; want 7, 5, 2", st.Events, st.UniqueEvents, st.Duplicates)
	}
	if want := map[string]int64{testWebhook: 6, "other": 1}; !maps.Equal(st.Webhooks, want) {
		t.Errorf("webhooks = %v, want %v", st.Webhooks, want)
	}
}

// TestSinkPeakInFlight holds five requests with a long Delay, sees them
// all in flight, then lets the clients give up: the sink must notice
// (not count them as delivered) rather than sit out the delay.
func TestSinkPeakInFlight(t *testing.T) {
	ts := startSink(t, Config{Secrets: []string{testSecret}, Delay: time.Minute})
	body := envelope(testWebhook, testEvents(1))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if _, err := deliver(ctx, ts.URL+"/hook", testWebhook, testSecret, body); !errors.Is(err, context.Canceled) {
				t.Errorf("deliver() = %v, want context.Canceled", err)
			}
		})
	}
	waitStats(t, ts, "5 requests in flight", func(s Summary) bool { return s.InFlight == 5 })
	cancel()
	wg.Wait()
	st := waitStats(t, ts, "no request in flight", func(s Summary) bool { return s.InFlight == 0 })
	if st.PeakInFlight != 5 || st.Requests != 5 || st.Events != 0 {
		t.Errorf("peak, requests, events = %d, %d, %d; want 5, 5, 0", st.PeakInFlight, st.Requests, st.Events)
	}
}

func TestSinkDelayAnswers(t *testing.T) {
	ts := startSink(t, Config{Secrets: []string{testSecret}, Delay: 50 * time.Millisecond})
	start := time.Now()
	mustDeliver(t, ts.URL+"/hook", testWebhook, testSecret, envelope(testWebhook, testEvents(1)), 200)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("answered after %v, want at least Delay 50ms", d)
	}
	if st := ts.stats(t); st.Events != 1 {
		t.Errorf("events = %d, want 1", st.Events)
	}
}

// waitStats polls /stats until cond holds (at most 5 s).
func waitStats(tb testing.TB, ts *testSink, what string, cond func(Summary) bool) Summary {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := ts.stats(tb)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s; stats %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSinkStatusRejected(t *testing.T) {
	ts := startSink(t, Config{Secrets: []string{testSecret}, Status: 503})
	mustDeliver(t, ts.URL+"/hook", testWebhook, testSecret, envelope(testWebhook, testEvents(2)), 503)
	if st := ts.stats(t); st.Rejected != 1 || st.Events != 0 || st.Batches != 0 {
		t.Errorf("rejected, events, batches = %d, %d, %d; want 1, 0, 0", st.Rejected, st.Events, st.Batches)
	}
}

func TestSinkInjectedFailures(t *testing.T) {
	body := envelope(testWebhook, testEvents(2))
	for _, tt := range []struct {
		mode    string
		timeout time.Duration
		check   func(status int, err error) bool
		want    string
	}{
		{"5xx", 0, func(st int, err error) bool { return err == nil && st == 503 }, "503"},
		{"reset", 0, func(_ int, err error) bool { return err != nil && !errors.Is(err, context.DeadlineExceeded) }, "a connection error"},
		{"timeout", 100 * time.Millisecond, func(_ int, err error) bool { return errors.Is(err, context.DeadlineExceeded) }, "the client to time out"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			ts := startSink(t, Config{Secrets: []string{testSecret}, FailRate: 1, FailMode: tt.mode})
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			status, err := deliver(ctx, ts.URL+"/hook", testWebhook, testSecret, body)
			if !tt.check(status, err) {
				t.Errorf("deliver() = %d, %v; want %s", status, err, tt.want)
			}
			st := waitStats(t, ts, "the request to end", func(s Summary) bool { return s.InFlight == 0 })
			if st.InjectedFailures != 1 || st.Events != 0 {
				t.Errorf("injected failures, events = %d, %d; want 1, 0", st.InjectedFailures, st.Events)
			}
		})
	}
}

func TestSinkSecrets(t *testing.T) {
	ts := startSink(t, Config{Secrets: []string{"s1", "s2,s3", "s2", "s3"}}) // as --secret s1 --secret s2,s3
	evs := testEvents(4)
	for i, secret := range []string{"s1", "s2", "s3", "s2,s3"} {
		id := fmt.Sprint("wh", i)
		mustDeliver(t, ts.URL+"/hook", id, secret, envelope(id, evs[i:i+1]), 200)
		mustDeliver(t, ts.URL+"/hook", id, secret, envelope(id, evs[i:i+1]), 200) // remembered secret
	}
	mustDeliver(t, ts.URL+"/hook", "wh0", "s2", envelope("wh0", evs[:1]), 200) // webhook's secret changed
	mustDeliver(t, ts.URL+"/hook", "wh0", "s4", envelope("wh0", evs[:1]), 401)
	if st := ts.stats(t); st.Batches != 9 || st.BadSignatures != 1 {
		t.Errorf("batches, bad signatures = %d, %d; want 9, 1", st.Batches, st.BadSignatures)
	}
}

func TestSinkNoVerify(t *testing.T) {
	ts := startSink(t, Config{NoVerify: true})
	mustDeliver(t, ts.URL+"/hook", testWebhook, "anything", envelope(testWebhook, testEvents(1)), 200)
}

// TestSinkStatsJSON checks the documented /stats shape key by key: a
// benchmark reads it.
func TestSinkStatsJSON(t *testing.T) {
	ts := startSink(t, Config{Secrets: []string{testSecret}})
	mustDeliver(t, ts.URL+"/hook", testWebhook, testSecret, envelope(testWebhook, testEvents(1)), 200)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, ts.URL+"/stats", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBody(resp)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var m map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	want := []string{"requests", "batches", "events", "unique_events", "duplicates", "bad_signatures",
		"mismatches", "malformed", "injected_failures", "rejected", "in_flight", "peak_in_flight",
		"max_batch_events", "topics", "webhooks", "latency_ms", "elapsed_s", "events_per_s"}
	if diff := cmp.Diff(slices.Sorted(slices.Values(want)), slices.Sorted(maps.Keys(m))); diff != "" {
		t.Errorf("/stats keys (-want +got):\n%s", diff)
	}
	var lat map[string]float64
	if err := json.Unmarshal(m["latency_ms"], &lat); err != nil || len(lat) != 4 || lat["count"] != 1 {
		t.Errorf("latency_ms = %s, want count, p50, p99, max with count 1", m["latency_ms"])
	}
}

func TestSinkReset(t *testing.T) {
	ts := startSink(t, Config{Secrets: []string{testSecret}})
	evs := testEvents(2)
	for _, reset := range []struct{ method, path string }{{"POST", "/stats/reset"}, {"DELETE", "/stats"}} {
		mustDeliver(t, ts.URL+"/hook", testWebhook, testSecret, envelope(testWebhook, evs), 200)
		if cleared := getStats(t, reset.method, ts.URL+reset.path); cleared.Events != 2 {
			t.Errorf("%s %s = events %d, want the 2 it clears", reset.method, reset.path, cleared.Events)
		}
		st := ts.stats(t)
		if st.Requests != 0 || st.Events != 0 || len(st.Topics) != 0 || st.Latency != nil || st.PeakInFlight != 0 {
			t.Errorf("after %s %s: %+v, want zeros", reset.method, reset.path, st)
		}
	}
	// The dedupe set is cleared too: the same events count as unique again.
	mustDeliver(t, ts.URL+"/hook", testWebhook, testSecret, envelope(testWebhook, evs), 200)
	if st := ts.stats(t); st.UniqueEvents != 2 {
		t.Errorf("unique after reset = %d, want 2", st.UniqueEvents)
	}

	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, ts.URL+"/stats", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	closeBody(resp)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /stats = %d, want 405", resp.StatusCode)
	}
}

// benchBatches holds signed 1,000-event batches of ~1 KB events for the
// benchmarks; generating them takes a while, so it happens once.
var benchBatches = sync.OnceValue(func() [][]byte {
	out := make([][]byte, 8)
	for i := range out {
		out[i] = envelope(testWebhook, testEvents(1000))
	}
	return out
})

// BenchmarkSinkHandle measures the whole delivery handler on 1,000-event
// batches of ~1 KB events: body read, HMAC, scan, dedupe and stats. The
// counters are reset every cycle of batches, so every event is a new
// insert into the dedupe set.
func BenchmarkSinkHandle(b *testing.B) {
	batches := benchBatches()
	s := New(Config{Secrets: []string{testSecret}, Quiet: true}, zerolog.Nop())
	reqs := make([]*http.Request, len(batches))
	for i, body := range batches {
		reqs[i] = httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/hook", nil)
		signer.SetHeaders(reqs[i].Header, testWebhook, []byte(testSecret), body, time.Now())
		reqs[i].ContentLength = int64(len(body))
	}
	w := &discardResponse{h: http.Header{}}
	b.SetBytes(int64(len(batches[0])))
	b.ReportAllocs()
	n := 0
	for ; b.Loop(); n++ {
		i := n % len(batches)
		if i == 0 {
			s.stats.reset(time.Now())
		}
		reqs[i].Body = io.NopCloser(bytes.NewReader(batches[i]))
		w.status = 0
		s.handleDelivery(w, reqs[i])
		if w.status != 200 {
			b.Fatalf("status %d", w.status)
		}
	}
	b.ReportMetric(float64(n)*1000/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkScanDelivery is the body scan alone (no HMAC, no stats).
func BenchmarkScanDelivery(b *testing.B) {
	body := benchBatches()[0]
	var d deliveryScan
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := scanDelivery(body, &d, func(id []byte) uint64 { return uint64(len(id)) }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSinkHTTP posts pre-signed batches to a real sink over
// loopback from 2×GOMAXPROCS keep-alive connections: the handler plus
// net/http and the kernel (and the client, in the same process).
func BenchmarkSinkHTTP(b *testing.B) {
	batches := benchBatches()
	ts := startSink(b, Config{Secrets: []string{testSecret}, Quiet: true})
	headers := make([]http.Header, len(batches))
	for i, body := range batches {
		headers[i] = http.Header{"Content-Type": {"application/json"}}
		signer.SetHeaders(headers[i], testWebhook, []byte(testSecret), body, time.Now())
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetBytes(int64(len(batches[0])))
	b.SetParallelism(2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, ts.URL+"/hook", bytes.NewReader(batches[i%len(batches)]))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header = headers[i%len(batches)]
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			closeBody(resp)
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "events/s")
}

// discardResponse is a minimal http.ResponseWriter for benchmarks.
type discardResponse struct {
	h      http.Header
	status int
}

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardResponse) WriteHeader(status int)      { d.status = status }
