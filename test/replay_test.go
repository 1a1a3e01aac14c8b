package test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookd/webhookd/dispatcher"
)

// A webhook auto-disabled with events dropped, re-enabled, then replayed
// from before its failure: every dropped event arrives, live traffic
// keeps flowing meanwhile, and replay and live requests together never
// exceed --max-in-flight at the receiver. Two replicas; the account's
// events carry an account token, so under partitioned consumption the
// replay reads the transformed wp.<k>.… subjects.
func TestReplayAfterDisable(t *testing.T) {
	t.Parallel()
	const maxInFlight = 2
	e := newEnv(t, func(c *dispatcher.Config) {
		c.DisableAfter = 1500 * time.Millisecond
		c.BackoffBase = 100 * time.Millisecond
		c.BackoffMax = 300 * time.Millisecond
		c.MaxInFlight = maxInFlight
		c.BatchMaxEvents = 10
	})
	d := e.startDispatcher()
	e.startDispatcher()
	sink := NewSink(t, testSecret)
	var healthy atomic.Bool
	sink.Respond = func(int64, *Request) int {
		if !healthy.Load() {
			return http.StatusServiceUnavailable
		}
		time.Sleep(20 * time.Millisecond) // long enough for requests to overlap
		return http.StatusOK
	}
	const account = "acme"
	subject := topicSMS + "." + account
	w := e.create(account, sink.URL, topicSMS)
	base := e.apiServerFor(d, account)
	since := time.Now()

	doomed := e.publish(subject, "doomed", 60)
	waitFor(t, 30*time.Second, "the webhook disabled", func() bool { return !e.get(w).Enabled })
	dropped := e.publish(subject, "while-disabled", 40)

	healthy.Store(true)
	var doc apiDoc
	if st := call(t, "POST", base+"/webhookd/webhooks/"+w.ID+"/replays", replayBody(since, ""), &doc); st != 409 {
		t.Errorf("replay of a disabled webhook: status %d, want 409", st)
	}
	e.setEnabled(w, true)
	e.waitConsumer(w.ID, true)

	// Live traffic flows during the replay.
	stopLive := e.publishRoundRobin(func() string { return "live" }, []string{subject}, 5*time.Millisecond)
	rid := startReplay(t, base, w.ID, since)
	var st map[string]any
	waitFor(t, 60*time.Second, "the replay done", func() bool {
		st = replayState(t, base, w.ID, rid)
		return st["state"] != "running"
	})
	live := stopLive()
	if st["state"] != "done" || st["finished_at"] == nil {
		t.Fatalf("replay ended %v, want done with finished_at", st)
	}
	found, sent := st["events_found"].(float64), st["events_sent"].(float64)
	if found < float64(len(doomed)+len(dropped)) || sent != found {
		t.Errorf("events_found %v, events_sent %v; want at least %d found, all of them sent", found, sent, len(doomed)+len(dropped))
	}
	waitDelivered(t, sink, append(append(doomed, dropped...), live...), 30*time.Second)
	if p := sink.Peak(); p > maxInFlight {
		t.Errorf("receiver saw %d requests at once, want at most --max-in-flight %d", p, maxInFlight)
	}

	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if code := call(t, "GET", base+"/webhookd/webhooks/"+w.ID+"/replays/", "", &list); code != 200 || len(list.Data) != 1 || list.Data[0].ID != rid {
		t.Errorf("GET replays: status %d, %+v; want the one replay", code, list.Data)
	}
}

// Replay requests that cannot be done get clear errors: 400 with a
// pointer for bad input, 422 for a window the stream no longer keeps,
// 404 for an unknown replay.
func TestReplayRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	d := e.startDispatcher()
	sink := NewSink(t, testSecret)
	w := e.create("default", sink.URL, topicSMS)
	base := e.apiServerFor(d, "default")
	url := base + "/webhookd/webhooks/" + w.ID + "/replays"
	past := time.Now().Add(-time.Minute)

	for _, tt := range []struct {
		name, body, pointer string
		status              int
	}{
		{"no since", `{"data":{"type":"webhook-replay","attributes":{}}}`, "/data/attributes/since", 400},
		{"bad since", `{"data":{"type":"webhook-replay","attributes":{"since":"yesterday"}}}`, "/data/attributes/since", 400},
		{"future since", replayBody(time.Now().Add(time.Hour), ""), "/data/attributes/since", 400},
		{"until before since", replayBody(past, `,"until":"`+past.Add(-time.Second).Format(time.RFC3339Nano)+`"`), "/data/attributes/until", 400},
		{"unknown topic", replayBody(past, `,"topics":["`+topicSMS+`","event:klaviyo.nope"]`), "/data/attributes/topics/1", 400},
		{"empty topics", replayBody(past, `,"topics":[]`), "/data/attributes/topics", 400},
		{"wrong type", `{"data":{"type":"webhook","attributes":{"since":"2026-01-01T00:00:00Z"}}}`, "/data/type", 409},
	} {
		var doc apiDoc
		st := call(t, "POST", url, tt.body, &doc)
		if st != tt.status || len(doc.Errors) == 0 || doc.Errors[0].Source.Pointer != tt.pointer {
			t.Errorf("%s: status %d, errors %+v; want %d with pointer %s", tt.name, st, doc.Errors, tt.status, tt.pointer)
		}
	}

	// The stream drops its oldest events: a window starting before what
	// it keeps is refused.
	e.publish(topicSMS, "old", 3)
	stream, err := e.js.Stream(context.Background(), "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.publish(topicSMS, "kept", 3)
	var doc apiDoc
	if st := call(t, "POST", url, replayBody(past, ""), &doc); st != 422 || len(doc.Errors) == 0 || doc.Errors[0].Source.Pointer != "/data/attributes/since" {
		t.Errorf("replay before the stream's oldest event: status %d, errors %+v; want 422 on since", st, doc.Errors)
	}
	if st := call(t, "GET", url+"/0190aaaa-0000-7000-8000-000000000000", "", &doc); st != 404 {
		t.Errorf("GET unknown replay: status %d, want 404", st)
	}
	if st := call(t, "POST", base+"/webhookd/webhooks/nope/replays", replayBody(time.Now(), ""), &doc); st != 404 {
		t.Errorf("replay of an unknown webhook: status %d, want 404", st)
	}
}

// DELETE cancels a running replay: it ends cancelled and sends nothing
// more.
func TestReplayCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *dispatcher.Config) { c.BatchMaxEvents = 5 })
	d := e.startDispatcher()
	sink := NewSink(t, testSecret)
	var slow atomic.Bool
	sink.Respond = func(int64, *Request) int {
		if slow.Load() {
			time.Sleep(200 * time.Millisecond)
		}
		return http.StatusOK
	}
	w := e.create("default", sink.URL, topicSMS)
	base := e.apiServerFor(d, "default")
	since := time.Now()
	ids := e.publish(topicSMS, "ev", 200)
	waitDelivered(t, sink, ids, 30*time.Second)
	e.waitIdle(w.ID)
	before := len(sink.Requests())

	slow.Store(true) // 40 batches of 5, 200 ms each: the replay takes 8 s at least
	rid := startReplay(t, base, w.ID, since)
	waitFor(t, 30*time.Second, "the first replayed request", func() bool { return len(sink.Requests()) > before })
	var doc apiDoc
	if st := call(t, "DELETE", base+"/webhookd/webhooks/"+w.ID+"/replays/"+rid, "", &doc); st != 200 ||
		doc.Data.Attributes["state"] != "cancelled" || doc.Data.Attributes["finished_at"] == nil {
		t.Fatalf("DELETE replay: status %d, %+v; want 200 and cancelled", st, doc.Data.Attributes)
	}
	// It stops: requests stop arriving well before the 40 batches.
	last, lastChange := len(sink.Requests()), time.Now()
	waitFor(t, 30*time.Second, "the replay's requests to stop", func() bool {
		if n := len(sink.Requests()); n != last {
			last, lastChange = n, time.Now()
		}
		return time.Since(lastChange) > 2*time.Second
	})
	if n := last - before; n >= 40 {
		t.Errorf("%d replayed requests after the cancel, want fewer than the 40 of the whole window", n)
	}
	if st := replayState(t, base, w.ID, rid); st["state"] != "cancelled" {
		t.Errorf("replay after cancel: %v, want cancelled", st)
	}
}
