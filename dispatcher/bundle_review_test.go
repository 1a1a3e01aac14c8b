package dispatcher

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A batch's events are diverted in bundles that fit in one NATS message
// with their headers: the events' headers count. Before, the size was
// estimated from data and subject alone, so events with large headers
// made a bundle over max_payload, whose publish failed every time: the
// partition events were handed back again and again (a duplicate for
// every other webhook of them each time) and never reached the retry
// subject.
func TestDivertBundleCountsHeaders(t *testing.T) {
	e := newPfixEnv(t, Config{})
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	big := strings.Repeat("h", 60_000) // 20 of them are over max_payload (1 MiB)
	const n = 20
	for i := range n {
		e.publish("ev"+strconv.Itoa(i), nats.Header{"X-Big": []string{big}})
	}
	var fans []*testFan
	var msgs []jetstream.Msg
	for _, m := range e.take(n) {
		tf := newTestFan(newSpy(m), 1)
		fans = append(fans, tf)
		msgs = append(msgs, tf.share(e.w.ID, rt))
	}
	nakAll(msgs, 0)
	for i, tf := range fans {
		tf.waitReleased(t)
		if acks, naks := tf.spy.counts(); acks != 1 || len(naks) != 0 {
			t.Fatalf("partition event %d: acks %d, naks %v; want acknowledged once its bundle is stored", i, acks, naks)
		}
	}
	limit := int(e.js.Conn().MaxPayload())
	for _, c := range e.retryCopies() {
		size := len(c.Data)
		for k, vs := range c.Header {
			for _, v := range vs {
				size += len(k) + len(v)
			}
		}
		if size > limit {
			t.Errorf("bundle of %d bytes, over max_payload %d", size, limit)
		}
	}
	evs := e.retryEvents()
	if len(evs) != n {
		t.Fatalf("retry subject holds %d events, want %d", len(evs), n)
	}
	for i, ev := range evs {
		if ev.header.Get("X-Big") != big || !bytes.Equal(ev.data, pfixEvent("ev"+strconv.Itoa(i))) {
			t.Errorf("event %d lost its header or data", i)
		}
	}
}

// Two events at the same sequence of the event stream but stored at
// different times (the stream was recreated and its sequences restarted
// within the retry stream's 2-minute duplicate window) are two events:
// both reach the retry subject. Before, a bundle's Nats-Msg-Id named its
// events by stream and sequence only, so the second was taken for a
// duplicate of the first and dropped.
func TestDivertReusedSequenceIsAnotherEvent(t *testing.T) {
	e := newPfixEnv(t, Config{})
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	at := time.Now()
	for i := range 2 {
		spy := newSpy(nil)
		spy.meta = &jetstream.MsgMetadata{Stream: e.cfg.Stream, Sequence: jetstream.SequencePair{Stream: 7},
			Timestamp: at.Add(time.Duration(i) * time.Minute), NumDelivered: 1}
		tf := newTestFan(spy, 1)
		_ = tf.share(e.w.ID, rt).Nak()
		tf.waitReleased(t)
		if acks, naks := spy.counts(); acks != 1 || len(naks) != 0 {
			t.Fatalf("event %d: acks %d, naks %v; want acknowledged", i, acks, naks)
		}
	}
	if evs := e.retryEvents(); len(evs) != 2 {
		t.Fatalf("retry subject holds %d events, want 2: the second was taken for a duplicate", len(evs))
	}
}
