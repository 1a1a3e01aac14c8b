package dispatcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// copyCases are events whose Nats-* headers were instructions to the
// event stream only: a copy carrying them to the retry or dead-letter
// stream would be refused every time.
var copyCases = []struct {
	name    string
	warmUps int // events published first
	opts    []jetstream.PublishOpt
}{
	{"expected stream", 0, []jetstream.PublishOpt{jetstream.WithExpectStream("EVENTS")}},
	// After two events the event stream's last sequence is 2, the
	// other streams' 0.
	{"expected last sequence", 2, []jetstream.PublishOpt{jetstream.WithExpectLastSequence(2)}},
}

// publishCase publishes tc's warm-up events and then its event ev1, and
// returns ev1 as fetched from the partition (the warm-ups acknowledged).
func (e *pfixEnv) publishCase(warmUps int, opts []jetstream.PublishOpt) jetstream.Msg {
	e.t.Helper()
	for i := range warmUps {
		e.publish("warm-up-"+strconv.Itoa(i), nil)
	}
	e.publish("ev1", producerHeaders(), opts...)
	msgs := e.take(warmUps + 1)
	for _, m := range msgs[:warmUps] {
		_ = m.Ack()
	}
	return msgs[warmUps]
}

// producerHeaders are an event's own headers, and its producer's
// message id.
func producerHeaders() nats.Header {
	return nats.Header{"X-Trace": []string{"abc"}, jetstream.MsgIDHeader: []string{"producer-1"}}
}

// checkCopy checks a retry or dead-letter copy's headers: the event's own
// kept, the producer's message id in Webhookd-Msg-Id, no Nats-* header
// of the event stream's.
func checkCopy(t *testing.T, h nats.Header) {
	t.Helper()
	if got := h.Get("X-Trace"); got != "abc" {
		t.Errorf("copy's X-Trace = %q, want abc", got)
	}
	if got := h.Get(HeaderMsgID); got != "producer-1" {
		t.Errorf("copy's %s = %q, want producer-1", HeaderMsgID, got)
	}
	for _, k := range []string{jetstream.ExpectedStreamHeader, jetstream.ExpectedLastSeqHeader} {
		if v := h.Get(k); v != "" {
			t.Errorf("copy carries %s: %s", k, v)
		}
	}
}

// An event published with an expectation on the event stream
// (Nats-Expected-Stream, Nats-Expected-Last-Sequence) is moved to its
// webhook's retry subject: the copy is stored and the partition event
// acknowledged. Before copyHeaders the retry stream refused the copy
// every time and the event was handed back forever.
func TestRetryCopyDropsStreamHeaders(t *testing.T) {
	for _, tc := range copyCases {
		t.Run(tc.name, func(t *testing.T) {
			e := newPfixEnv(t, Config{})
			spy := newSpy(e.publishCase(tc.warmUps, tc.opts))
			rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
			tf := newTestFan(spy, 1)
			_ = tf.share(e.w.ID, rt).Nak()
			tf.waitReleased(t)
			if acks, naks := spy.counts(); acks != 1 || len(naks) != 0 {
				t.Fatalf("partition event: acks %d, naks %v; want acknowledged once its copy is stored", acks, naks)
			}
			copies := e.retryCopies()
			if len(copies) != 1 {
				t.Fatalf("retry stream holds %d messages, want 1 bundle", len(copies))
			}
			for k := range copies[0].Header {
				if k != jetstream.MsgIDHeader && strings.HasPrefix(k, "Nats-") {
					t.Errorf("bundle carries the event stream's %s: %v", k, copies[0].Header[k])
				}
			}
			evs := e.retryEvents()
			if len(evs) != 1 || evs[0].webhook != e.w.ID {
				t.Fatalf("retry stream holds %d events, want 1 for %s", len(evs), e.w.ID)
			}
			ev := evs[0]
			if got := ev.header.Get("X-Trace"); got != "abc" {
				t.Errorf("event's X-Trace = %q, want abc", got)
			}
			if got := ev.header.Get(jetstream.MsgIDHeader); got != "producer-1" {
				t.Errorf("event's producer message id = %q, want producer-1", got)
			}
			for _, k := range []string{jetstream.ExpectedStreamHeader, jetstream.ExpectedLastSeqHeader} {
				if v := ev.header.Get(k); v != "" {
					t.Errorf("event keeps %s: %s", k, v)
				}
			}
			if ev.subject != pfixSubject {
				t.Errorf("event's subject = %q, want %q", ev.subject, pfixSubject)
			}
		})
	}
}

// The same event set aside (dead-lettered) is stored on the dead-letter
// stream and terminated; before, the copy was refused and the event
// handed back every 5 s.
func TestDeadLetterCopyDropsStreamHeaders(t *testing.T) {
	for _, tc := range copyCases {
		t.Run(tc.name, func(t *testing.T) {
			e := newPfixEnv(t, Config{})
			spy := newSpy(e.publishCase(tc.warmUps, tc.opts))
			dl := &deadLetterer{prefix: e.cfg.DeadLetter, js: e.js, log: zerolog.Nop(), stats: new(Stats)}
			dl.set(context.Background(), spy, "rejected", "refused by the endpoint")
			if acks, naks := spy.counts(); acks != 1 || len(naks) != 0 {
				t.Fatalf("event: acks (terms) %d, naks %v; want terminated once set aside", acks, naks)
			}
			got := deadLetters(t, e.js)
			if len(got) != 1 {
				t.Fatalf("dead-letter stream holds %d events, want 1", len(got))
			}
			checkCopy(t, got[0].Headers())
		})
	}
}

// The retrying flag is set before a copy is made: when it cannot be set
// (Redis away) no consumer would ever read the copy, so the event is
// handed back and nothing is copied. Before, the flag was set in the
// background and the copy made regardless.
func TestRetryCopyNeedsTheFlag(t *testing.T) {
	e := newPfixEnv(t, Config{})
	e.publish("ev1", nil)
	spy := newSpy(e.take(1)[0])
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{err: errors.New("redis away")})
	tf := newTestFan(spy, 1)
	_ = tf.share(e.w.ID, rt).Nak()
	tf.waitReleased(t)
	if acks, naks := spy.counts(); acks != 0 || len(naks) != 1 {
		t.Errorf("partition event: acks %d, naks %v; want handed back", acks, naks)
	}
	if n := len(e.retryCopies()); n != 0 {
		t.Errorf("retry stream holds %d copies, want none without a flag", n)
	}
}

// A retry runner judges a retried event's staleness by the webhook's
// newest record in the index, not by the one it was started with: a
// webhook disabled and enabled again meanwhile (ActiveSince moved) must
// not get the events stored before the re-enable.
func TestRetryPlanStaleUsesNewestRecord(t *testing.T) {
	t0 := time.Now().Add(-time.Hour)
	reenabled := t0.Add(30 * time.Minute)
	runnerRecord := subscriptions.Webhook{ID: "wh1", AccountID: "acct1", Enabled: true, ActiveSince: t0}
	for _, tc := range []struct {
		name     string
		inIndex  bool // the index holds wh1 re-enabled at reenabled
		storedAt time.Time
		want     bool
	}{
		{"stored before the re-enable the index knows", true, reenabled.Add(-time.Minute), true},
		{"stored after the re-enable", true, reenabled.Add(time.Minute), false},
		{"not in the index: the runner's record", false, reenabled.Add(-time.Minute), false},
		{"not in the index, before the runner's record", false, t0.Add(-time.Minute), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newIndex(nil, "default", zerolog.Nop())
			if tc.inIndex {
				cur := runnerRecord
				cur.ActiveSince = reenabled
				x.apply(cur.ID, &cur)
			}
			k := &retryKeeper{cfg: Config{}.withDefaults(), idx: x, log: zerolog.Nop()}
			m := &spyMsg{hdr: nats.Header{headerStoredAt: []string{strconv.FormatInt(tc.storedAt.UnixNano(), 10)}}}
			if got := k.retryPlan().stale(runnerRecord, m); got != tc.want {
				t.Errorf("stale = %v, want %v", got, tc.want)
			}
		})
	}
}

// A retry copy says how many requests carried its event (the attempt
// log keeps counting from it) and nothing else: a producer's own
// Webhookd-Tries header must not inflate the count of an event never
// tried, and a tried event's copy says 1 whatever the producer set.
func TestRetryCopyCountsOnlyOurTries(t *testing.T) {
	for _, tried := range []bool{false, true} {
		t.Run(fmt.Sprintf("tried=%v", tried), func(t *testing.T) {
			e := newPfixEnv(t, Config{})
			e.publish("ev1", nats.Header{headerTries: []string{"7"}})
			spy := newSpy(e.take(1)[0])
			rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
			tf := newTestFan(spy, 1)
			s := tf.share(e.w.ID, rt)
			if tried {
				s.markTried()
			}
			_ = s.Nak()
			tf.waitReleased(t)
			evs := e.retryEvents()
			if len(evs) != 1 {
				t.Fatalf("retry stream holds %d events, want 1", len(evs))
			}
			want := uint64(0)
			if tried {
				want = 1
			}
			if evs[0].tries != want {
				t.Errorf("bundled event's tries = %d, want %d", evs[0].tries, want)
			}
			if got := evs[0].header.Get(headerTries); got != "" {
				t.Errorf("bundled event keeps the producer's %s: %q", headerTries, got)
			}
		})
	}
}

// A producer that publishes many bad events gets them all set aside and
// counted, but the log says so a few times a minute, not once per event.
func TestDeadLetterLogIsSampled(t *testing.T) {
	e := newPfixEnv(t, Config{})
	const n = 30
	for i := range n {
		e.publish("bad-"+strconv.Itoa(i), nil)
	}
	var buf bytes.Buffer
	stats := new(Stats)
	dl := &deadLetterer{prefix: e.cfg.DeadLetter, js: e.js, log: zerolog.New(&buf), stats: stats}
	for _, m := range e.take(n) {
		dl.set(context.Background(), m, "not_json", "not JSON")
	}
	if got := stats.DeadLettered.Load(); got != n {
		t.Errorf("dead-lettered counter = %d, want %d", got, n)
	}
	if lines := bytes.Count(buf.Bytes(), []byte("\n")); lines == 0 || lines > deadLetterLogBurst {
		t.Errorf("%d log lines for %d dead letters, want 1 to %d", lines, n, deadLetterLogBurst)
	}
}
