package dispatcher

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// divertBatch takes n partition events and moves them, as one failed
// batch would, to wh1's retry subject; it returns once every partition
// event is settled.
func divertBatch(t *testing.T, e *pfixEnv, rt *retrier, n int) {
	t.Helper()
	for i := range n {
		e.publish("ev"+strconv.Itoa(i), nats.Header{"X-Trace": []string{"t" + strconv.Itoa(i)}})
	}
	divertTaken(t, e, rt, n)
}

// divertTaken takes n partition events and moves them, as one failed
// batch would, to wh1's retry subject; it returns once every partition
// event is acknowledged.
func divertTaken(t *testing.T, e *pfixEnv, rt *retrier, n int) {
	t.Helper()
	var fans []*testFan
	var msgs []jetstream.Msg
	for _, m := range e.take(n) {
		tf := newTestFan(newSpy(m), 1)
		fans = append(fans, tf)
		msgs = append(msgs, tf.share(e.w.ID, rt))
	}
	nakAll(msgs, time.Minute)
	for i, tf := range fans {
		tf.waitReleased(t)
		if acks, naks := tf.spy.counts(); acks != 1 || len(naks) != 0 {
			t.Fatalf("partition event %d: acks %d, naks %v; want acknowledged once its bundle is stored", i, acks, naks)
		}
	}
}

// A failed batch moves to the retry subject as one message, not one copy
// per event: the copies cost nats-server a store, a PubAck and a delete
// each, on the cores the partition's healthy webhooks need (the scale
// bench's dead neighbour). Before bundles this was 100 messages.
func TestDivertBundlesABatch(t *testing.T) {
	e := newPfixEnv(t, Config{})
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	divertBatch(t, e, rt, 100)
	if got := len(e.retryCopies()); got != 1 {
		t.Fatalf("retry stream holds %d messages, want 1 bundle", got)
	}
	evs := e.retryEvents()
	if len(evs) != 100 {
		t.Fatalf("bundle holds %d events, want 100", len(evs))
	}
	for i, ev := range evs {
		if want := pfixEvent("ev" + strconv.Itoa(i)); !bytes.Equal(ev.data, want) {
			t.Fatalf("event %d = %s, want %s (in order)", i, ev.data, want)
		}
		if got := ev.header.Get("X-Trace"); got != "t"+strconv.Itoa(i) {
			t.Errorf("event %d's X-Trace = %q", i, got)
		}
		if ev.subject != pfixSubject || ev.storedAt == 0 {
			t.Errorf("event %d: subject %q, stored at %d", i, ev.subject, ev.storedAt)
		}
	}
}

// A bundle too large for one NATS message is split: each bundle stays
// under the server's max_payload.
func TestDivertSplitsAtMaxPayload(t *testing.T) {
	e := newPfixEnv(t, Config{})
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	big := bytes.Repeat([]byte("x"), 200_000) // max_payload is 1 MiB
	for i := range 12 {
		m := nats.NewMsg(pfixSubject)
		m.Data = append(append([]byte(`{"data":{"id":"big`+strconv.Itoa(i)+`","pad":"`), big...), `"}}`...)
		if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	divertTaken(t, e, rt, 12)
	copies := e.retryCopies()
	limit := int(e.js.Conn().MaxPayload())
	for _, c := range copies {
		if len(c.Data) > limit {
			t.Errorf("bundle of %d bytes, over max_payload", len(c.Data))
		}
	}
	if n := len(e.retryEvents()); n != 12 || len(copies) < 3 {
		t.Errorf("%d events in %d bundles, want 12 in at least 3", n, len(copies))
	}
}

// retryBundle creates wh1's retry consumer and fetches the one bundle
// it holds, expanded into its parts.
func retryBundle(t *testing.T, e *pfixEnv) (jetstream.Consumer, []jetstream.Msg) {
	t.Helper()
	ctx := context.Background()
	c, err := e.js.CreateOrUpdateConsumer(ctx, e.cfg.retryStream(), e.cfg.retryConsumerConfig(e.w.ID))
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := fetch(ctx, c, 10, 0, time.Second)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetched %d retry messages (%v), want 1 bundle", len(msgs), err)
	}
	return c, expandBundle(e.js, e.w.ID, msgs[0], nil)
}

func consumerState(t *testing.T, c jetstream.Consumer) (pending uint64, ackPending int) {
	t.Helper()
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.NumPending, info.NumAckPending
}

// A bundle is acknowledged once every event in it is settled, handed
// back whole when all are, and split when only some are: the handed-back
// ones become a new bundle counting the try, the rest are not sent again.
func TestBundleSettlesAsItsParts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		naked  int // parts handed back (the first ones)
		remain int // events on the retry subject afterwards
	}{
		{"all delivered", 0, 0},
		{"all handed back", 10, 10},
		{"some handed back", 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newPfixEnv(t, Config{})
			rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
			divertBatch(t, e, rt, 10)
			c, parts := retryBundle(t, e)
			if len(parts) != 10 {
				t.Fatalf("bundle expanded to %d events, want 10", len(parts))
			}
			for i, p := range parts {
				if got := p.Headers().Get("X-Trace"); got != "t"+strconv.Itoa(i) {
					t.Errorf("part %d's X-Trace = %q", i, got)
				}
				if p.Subject() != pfixSubject {
					t.Errorf("part %d's subject = %q", i, p.Subject())
				}
				if i < tc.naked {
					_ = p.NakWithDelay(time.Minute)
				} else {
					_ = p.Ack()
				}
			}
			waitFor(t, "the bundle settled", func() bool {
				pending, ackPending := consumerState(t, c)
				switch {
				case tc.naked == 10: // waiting out its delay, unacknowledged
					return pending == 0 && ackPending == 1
				case tc.naked > 0: // a new bundle pending, the old one gone
					return pending == 1 && ackPending == 0
				}
				return pending == 0 && ackPending == 0
			})
			evs := e.retryEvents()
			if len(evs) != tc.remain {
				t.Fatalf("retry subject holds %d events, want %d", len(evs), tc.remain)
			}
			if tc.naked > 0 && tc.naked < 10 {
				for i, ev := range evs {
					if ev.tries != 1 {
						t.Errorf("split-off event %d: tries %d, want 1 (the request that carried it)", i, ev.tries)
					}
					if want := pfixEvent("ev" + strconv.Itoa(i)); !bytes.Equal(ev.data, want) {
						t.Errorf("split-off event %d = %s, want %s", i, ev.data, want)
					}
				}
			}
		})
	}
}

// Bytes that are not a bundle are refused by the decoder, never read
// past their end.
func TestDecodeBundleRefusesGarbage(t *testing.T) {
	good := appendBundled(nil, bundled{subject: "a.b", storedAt: 5, tries: 2,
		header: nats.Header{"K": []string{"v"}}, data: []byte(`{}`)})
	evs, err := decodeBundle(good)
	if err != nil || len(evs) != 1 || evs[0].subject != "a.b" || evs[0].storedAt != 5 || evs[0].tries != 2 ||
		evs[0].header.Get("K") != "v" || string(evs[0].data) != `{}` {
		t.Fatalf("round trip: %+v, %v", evs, err)
	}
	for i := range len(good) {
		if _, err := decodeBundle(good[:i]); err == nil {
			t.Errorf("decoding the first %d of %d bytes: no error", i, len(good))
		}
	}
	if _, err := decodeBundle([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}); err == nil {
		t.Error("a huge length: no error")
	}
}

// A retry subject's name says how many events it holds.
func TestBundleEvents(t *testing.T) {
	for subject, want := range map[string]int64{
		bundleSubject("wh1", 250): 250, retrySubject("wh1"): 1, "webhookd.retry.wh1.x": 1,
	} {
		if got := bundleEvents(subject); got != want {
			t.Errorf("bundleEvents(%s) = %d, want %d", subject, got, want)
		}
	}
}

// FuzzDecodeBundle: whatever bytes a retry message holds, decoding
// neither panics nor reads past them, and what decodes encodes back to
// bytes that decode the same.
func FuzzDecodeBundle(f *testing.F) {
	f.Add(appendBundled(nil, bundled{subject: "event:klaviyo.sent_sms.a", storedAt: 1, tries: 1,
		header: nats.Header{"Nats-Msg-Id": []string{"x"}}, data: []byte(`{"data":{}}`)}))
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := decodeBundle(data)
		if err != nil {
			return
		}
		var again []byte
		for _, e := range evs {
			again = appendBundled(again, e)
		}
		evs2, err := decodeBundle(again)
		if err != nil || len(evs2) != len(evs) {
			t.Fatalf("re-encoded bundle: %d events, %v; want %d", len(evs2), err, len(evs))
		}
		for i := range evs {
			if evs[i].subject != evs2[i].subject || !bytes.Equal(evs[i].data, evs2[i].data) ||
				evs[i].storedAt != evs2[i].storedAt || evs[i].tries != evs2[i].tries {
				t.Fatalf("event %d changed in a round trip", i)
			}
		}
	})
}

// A webhook's backlog on its retry subjects counts events, not messages:
// single copies count one each and a bundle the events its subject says.
func TestRetriedCountsBundledEvents(t *testing.T) {
	e := newPfixEnv(t, Config{})
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	divertBatch(t, e, rt, 7)
	divertBatch(t, e, rt, 5)
	if _, err := e.js.Publish(context.Background(), retrySubject(e.w.ID), pfixEvent("single")); err != nil {
		t.Fatal(err)
	}
	x := &extras{cfg: e.cfg, js: e.js}
	n, err := x.retried(context.Background(), e.w.ID)
	if err != nil || n != 13 {
		t.Errorf("retried = %d, %v; want 13 (bundles of 7 and 5, one single copy)", n, err)
	}
}
