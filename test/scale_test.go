package test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// Issue 13, "Silent failure at 1,000 webhooks": nats-server limits a
// stream to 1,000 consumers unless the stream or the account sets a limit
// (nats-server v2.15.2: JSDefaultMaxConsumersPerStream = 1_000 in
// server/jetstream_api.go becomes Options.JetStreamLimits.DefaultMaxConsumers
// in setBaselineOptions, opts.go; the stream's max_consumers, -1 when
// unset, and the account's JetStream max_consumers both count as "not
// set", so addConsumer in consumer.go enforces the 1,000). The issue saw
// the 1,001st webhook created enabled, never delivered to, with a clean
// delivery state, and "maximum consumers limit reached" logged hundreds of
// thousands of times.
//
// The test creates 1,001 enabled webhooks on one account (the store's
// per-account cap raised), publishes one event all of them subscribe to,
// and proves that every webhook receives it, that the log does not repeat
// the consumer-limit error, that every delivery state says
// undeliverable_reason null and the webhookd_webhooks_undeliverable gauge
// is 0.
func TestThousandAndOneWebhooks(t *testing.T) {
	t.Parallel()
	const n = 1001
	e := newEnv(t, nil)
	store := subscriptions.New(e.redis.Client(t), subscriptions.Config{MaxWebhooksPerAccount: 2 * n})
	sink := NewSink(t, testSecret)
	var got perWebhook
	sink.Respond = func(_ int64, r *Request) int { got.add(r); return 200 }
	ids := make([]string, n)
	for i := range ids {
		w, err := store.Create(context.Background(), subscriptions.NewWebhook{
			AccountID: "default", Name: "scale", EndpointURL: sink.URL, Secret: testSecret, Topics: []string{topicSMS},
		})
		if err != nil {
			t.Fatalf("Create %d: %v", i, err)
		}
		ids[i] = w.ID
	}
	p := e.startWebhookd("--metrics-addr", "127.0.0.1:0", "--api-key", testKey+"=default", "--api-rate-limit", "0")
	api, metrics := p.apiURL(t), p.metricsURL(t)
	waitFor(t, 30*time.Second, "the event stream", func() bool {
		_, err := e.js.Stream(context.Background(), "EVENTS")
		return err == nil
	})
	e.publish(topicSMS, "scale", 1)

	// Creating a thousand consumers takes a while under -race; once most
	// webhooks have the event, the rest get a bounded grace.
	waitFor(t, 120*time.Second, "900 webhooks reached", func() bool { return got.with("scale-0") >= 900 })
	if !poll(15*time.Second, func() bool { return got.with("scale-0") == n }) {
		t.Errorf("%d of %d webhooks received the event, want all", got.with("scale-0"), n)
	}
	if c := strings.Count(p.out.String(), "maximum consumers"); c > 5 {
		t.Errorf(`the log repeats "maximum consumers" %d times, want at most a handful`, c)
	}
	missing, flagged := 0, 0
	for _, id := range ids {
		attrs := deliveryState(t, api, id)
		v, ok := attrs["undeliverable_reason"]
		switch {
		case !ok:
			missing++
		case v != nil:
			flagged++
			if flagged == 1 {
				t.Logf("webhook %s: undeliverable_reason %v", id, v)
			}
		}
	}
	if missing > 0 || flagged > 0 {
		t.Errorf("delivery states: %d without undeliverable_reason, %d with one; want all %d present and null", missing, flagged, n)
	}
	m := scrape(t, metrics)
	if v, ok := m["webhookd_webhooks_undeliverable"]; !ok || v != 0 {
		t.Errorf("webhookd_webhooks_undeliverable = %v (present %v), want 0", v, ok)
	}
}

// Issue 13, "Memory bounded by bytes": a fetch took up to 1,000 messages
// whatever their size and up to 10 batches per webhook were held at once;
// 500 KB events drove RSS to 2.1 GB for one webhook and rising.
//
// 200 events of 500 KB (100 MB) wait in the stream for one webhook whose
// endpoint is slow (300 ms per request). With --max-buffered-bytes 64MiB
// and --batch-max-bytes 1MiB (so per webhook about --max-in-flight ×
// --batch-max-bytes = 10 MiB) the test proves webhookd's peak RSS (VmHWM;
// the binary is race-built, which multiplies heap memory: today's code
// peaks at about 750 MiB here) stays under 300 MiB until every event
// arrived.
func TestMemoryBoundedByBytes(t *testing.T) {
	t.Parallel()
	const bound = 300 << 20
	e := newEnv(t, nil)
	flags := []string{"--max-buffered-bytes", "64MiB", "--batch-max-bytes", "1MiB"}
	p := e.startWebhookd(flags...)
	sink := NewSink(t, testSecret)
	sink.Respond = func(int64, *Request) int { time.Sleep(300 * time.Millisecond); return 200 }
	e.create("default", sink.URL, topicSMS)
	// Published while webhookd is stopped, the events are all there for
	// the first fetch.
	if _, err := p.stop(15 * time.Second); err != nil {
		t.Fatalf("stopping webhookd: %v", err)
	}
	ids := e.publishBodies(topicSMS, idRange("big", 200), func(id string) []byte { return paddedBody(id, 500<<10) })
	p = e.startWebhookd(flags...)
	pid := p.cmd.Process.Pid
	var peak int64
	done := poll(90*time.Second, func() bool {
		if peak = peakRSS(t, pid); peak > bound {
			return true
		}
		got := sink.Delivered()
		for _, id := range ids {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("peak RSS %d MiB, %d of %d events delivered", peak>>20, len(sink.Delivered()), len(ids))
	if peak > bound {
		t.Fatalf("peak RSS %d MiB, want under %d MiB", peak>>20, bound>>20)
	}
	if !done {
		t.Fatal("not every event delivered within 90s")
	}
}
