package test

import (
	"bufio"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/test/harness"
)

// Issue 13, "Redis that comes back empty": Redis restarted on an empty
// data dir and within 3 s every consumer was deleted, with no log line;
// restoring the backup then recreated the consumers at each webhook's
// active_since and resent all history (100 % duplicates).
//
// webhookd runs on an external Redis with AOF; three webhooks deliver.
// Redis is restarted on an empty data dir (same socket), then on its
// original data (the restored backup). The test proves: no consumer is
// deleted while the registry is empty (each consumer's creation time is
// the same at the end, so none was deleted and recreated either); a log
// line says the registry does not match and webhookd_registry_epoch_mismatch
// is 1 meanwhile, 0 after the restore; events published during the outage
// and after it arrive, and events delivered before arrive exactly once.
func TestRedisBackEmptyIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.redis.Stop()
	e.redis = harness.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	e.store = subscriptions.New(e.redis.Client(t), subscriptions.Config{})
	p := e.startWebhookd("--metrics-addr", "127.0.0.1:0")
	metrics := p.metricsURL(t)
	ctx := context.Background()
	sinks := make([]*Sink, 3)
	created := map[string]time.Time{}
	for i := range sinks {
		sinks[i] = NewSink(t, testSecret)
		w := e.create("default", sinks[i].URL, topicSMS)
		c, err := e.js.Consumer(ctx, "EVENTS", consumerOf(w))
		if err != nil {
			t.Fatal(err)
		}
		created[consumerOf(w)] = c.CachedInfo().Created
	}
	before := e.publish(topicSMS, "before", 20)
	for _, s := range sinks {
		waitDelivered(t, s, before, 15*time.Second)
	}
	missing := func() []string {
		var out []string
		for id := range created {
			if _, err := e.js.Consumer(ctx, "EVENTS", id); err != nil {
				out = append(out, id)
			}
		}
		return out
	}

	e.redis.Stop()
	e.redis.StartIn(t, t.TempDir())
	mismatch := func() float64 { return scrape(t, metrics)["webhookd_registry_epoch_mismatch"] }
	// Either the refusal shows or the damage does.
	poll(15*time.Second, func() bool { return mismatch() == 1 || len(missing()) > 0 })
	if m := missing(); len(m) > 0 {
		t.Errorf("%d of %d consumers deleted while Redis was empty, want none", len(m), len(created))
	}
	if v := mismatch(); v != 1 {
		t.Errorf("webhookd_registry_epoch_mismatch = %v while Redis is empty, want 1", v)
	}
	if !registryMismatchLogged(p.out.String()) {
		t.Error("no log line says the registry does not match")
	}
	during := e.publish(topicSMS, "during", 20)

	e.redis.Stop()
	e.redis.StartIn(t, e.redis.Dir) // the restored backup
	after := e.publish(topicSMS, "after", 20)
	for i, s := range sinks {
		want := append(append([]string(nil), during...), after...)
		if !poll(30*time.Second, func() bool { return count(want, s.Delivered()).lost == 0 }) {
			t.Errorf("sink %d: %d of %d events of and after the outage delivered", i, count(want, s.Delivered()).delivered, len(want))
		}
		if tl := count(before, s.Delivered()); tl.duplicated != 0 {
			t.Errorf("sink %d: %d of the %d events delivered before the outage came again", i, tl.duplicated, len(before))
		}
	}
	for id, at := range created {
		c, err := e.js.Consumer(ctx, "EVENTS", id)
		if err != nil || !c.CachedInfo().Created.Equal(at) {
			t.Errorf("consumer of %s was deleted or recreated (err %v)", id, err)
		}
	}
	if !poll(10*time.Second, func() bool { return mismatch() == 0 }) {
		t.Error("webhookd_registry_epoch_mismatch still 1 after the registry came back")
	}
}

// registryMismatchLogged reports whether a JSON log line's message speaks
// of the registry not matching (its epoch or identity).
func registryMismatchLogged(out string) bool {
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct{ Message string }
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		m := strings.ToLower(l.Message)
		if strings.Contains(m, "registry") && (strings.Contains(m, "epoch") || strings.Contains(m, "match")) {
			return true
		}
	}
	return false
}
