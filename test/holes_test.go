package test

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// Issue 13, "Smaller holes": a dead letter was deduplicated by
// EVENTS:<seq> for 10 minutes, so once the event stream is deleted and
// recreated (sequence numbers restart) a new bad event at a reused
// sequence was dropped silently by the dead-letter stream's duplicate
// window.
//
// The test dead-letters a bad event at sequence 1, deletes the stream,
// waits for webhookd to recreate it, publishes another bad event (again
// sequence 1) and proves that this one is dead-lettered too.
func TestDeadLetterAfterStreamRecreated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startWebhookd()
	sink := NewSink(t, testSecret)
	w := e.create("default", sink.URL, topicSMS)
	ctx := context.Background()
	bad := func(body string) uint64 {
		t.Helper()
		ack, err := e.js.Publish(ctx, topicSMS, []byte(body))
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		return ack.Sequence
	}
	first, second := `{"data": not json, first`, `{"data": not json, second`
	seq1 := bad(first)
	if _, ok := e.waitDeadLetter(10*time.Second, "", first); !ok {
		t.Fatal("the first bad event was not dead-lettered")
	}
	if err := e.js.DeleteStream(ctx, "EVENTS"); err != nil {
		t.Fatal(err)
	}
	e.waitConsumer(w.ID, true) // the stream and the consumer are back
	if seq2 := bad(second); seq2 != seq1 {
		t.Fatalf("the second bad event has sequence %d, the first had %d; the test needs them equal", seq2, seq1)
	}
	waitDelivered(t, sink, e.publish(topicSMS, "after", 1), 15*time.Second)
	if _, ok := e.waitDeadLetter(10*time.Second, "", second); !ok {
		t.Errorf("the bad event at reused sequence %d was not dead-lettered; dead letters: %v", seq1, e.deadLetters())
	}
}

// Issue 13, "Smaller holes": PATCHing endpoint_url of a webhook in error
// kept the old next_attempt_at (up to ~72 min with the defaults).
//
// With --backoff-base 30s the webhook's first failure parks its retry at
// least 24 s away; the test then PATCHes endpoint_url to a healthy
// receiver and proves the new URL receives the waiting events within 8 s:
// a new URL starts a fresh probe.
func TestPatchedEndpointIsProbedAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := e.startWebhookd("--backoff-base", "30s", "--backoff-max", "1h", "--api-key", testKey+"=default")
	api := p.apiURL(t)
	old, fresh := NewSink(t, testSecret), NewSink(t, testSecret)
	old.Respond = func(int64, *Request) int { return http.StatusInternalServerError }
	w := e.create("default", old.URL, topicSMS)
	ids := e.publish(topicSMS, "parked", 5)
	waitFor(t, 15*time.Second, "the retry parked ≥ 20s away", func() bool {
		return time.Until(e.get(w).State.NextAttemptAt) > 20*time.Second
	})
	next := e.get(w).State.NextAttemptAt
	patch := `{"data":{"type":"webhook","id":"` + w.ID + `","attributes":{"endpoint_url":"` + fresh.URL + `"}}}`
	if st := call(t, "PATCH", api+"/api/webhooks/"+w.ID, patch, nil); st != http.StatusOK {
		t.Fatalf("PATCH endpoint_url: status %d", st)
	}
	patched := time.Now()
	if !poll(8*time.Second, func() bool { return count(ids, fresh.Delivered()).lost == 0 }) {
		t.Errorf("the new endpoint got %d requests, %d of %d events, within 8s of the PATCH; want all (the old next_attempt_at was %v away)",
			len(fresh.Requests()), len(fresh.Delivered()), len(ids), next.Sub(patched).Round(time.Second))
	}
}
