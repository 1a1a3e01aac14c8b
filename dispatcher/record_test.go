package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/batcher"
	"github.com/webhookd/webhookd/dispatcher/activity"
	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/test/harness"
)

// recorder keeps every attempt recorded.
type recorder struct {
	mu sync.Mutex
	as []activity.Attempt
}

func (r *recorder) Record(a activity.Attempt) { r.mu.Lock(); r.as = append(r.as, a); r.mu.Unlock() }

func (r *recorder) take() []activity.Attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.as
	r.as = nil
	return out
}

func TestOutcomeClass(t *testing.T) {
	cases := []struct {
		o    outcome
		want activity.ErrorClass
	}{
		{outcome{kind: kindOK, status: 200}, activity.ClassNone},
		{outcome{kind: kindStatus, status: 204}, activity.ClassUnaccepted},
		{outcome{kind: kindStatus, status: 299}, activity.ClassUnaccepted},
		{outcome{kind: kindStatus, status: 101}, activity.ClassUnaccepted},
		{outcome{kind: kindStatus, status: 302}, activity.ClassRedirect},
		{outcome{kind: kindStatus, status: 404}, activity.ClassClient},
		{outcome{kind: kindStatus, status: 429}, activity.ClassClient},
		{outcome{kind: kindStatus, status: 500}, activity.ClassServer},
		{outcome{kind: kindStatus, status: 503}, activity.ClassServer},
		{outcome{kind: kindStatus, status: 700}, activity.ClassUnaccepted},
		{outcome{kind: kindTimeout}, activity.ClassTimeout},
		{outcome{kind: kindRefused}, activity.ClassConnect},
		{outcome{kind: kindDNS}, activity.ClassConnect},
		{outcome{kind: kindNetwork}, activity.ClassConnect},
		{outcome{kind: kindTLS}, activity.ClassTLS},
		{outcome{kind: kindBlocked}, activity.ClassBlocked},
		{outcome{kind: kindInvalid}, activity.ClassInvalidURL},
		{outcome{kind: kindInterrupted}, activity.ClassInterrupted},
		{classify(syscall.ECONNREFUSED), activity.ClassConnect},
		{classify(errors.New("x")), activity.ClassConnect},
	}
	for _, tc := range cases {
		if got := tc.o.class(); got != tc.want {
			t.Errorf("outcome{kind %d, status %d}.class() = %q, want %q", tc.o.kind, tc.o.status, got, tc.want)
		}
	}
}

func TestScrub(t *testing.T) {
	const secret = "whsec-0123456789"
	if got := scrub("echo "+secret+"!", secret); strings.Contains(got, secret) || got != "echo [redacted]!" {
		t.Errorf("scrub with the secret = %q, want it redacted", got)
	}
	if got := scrub("bad \xff utf8", secret); got != "bad \uFFFD utf8" {
		t.Errorf("scrub(invalid UTF-8) = %q", got)
	}
	if got := scrub("status: ss", "s"); got != "status: ss" {
		t.Errorf("scrub with a 1-byte secret = %q, want the text unchanged", got)
	}
}

// Every request sent is recorded: the failure with when its events are
// tried again and the receiver's answer, the success after it with its
// trigger "retry", the events' ids, sizes and attempt counts.
func TestDeliverRecordsAttempts(t *testing.T) {
	const secret = "whsec-0123456789abcdef"
	var n int
	var mu sync.Mutex
	f := newDeliveryFixture(t, func([]byte) int {
		mu.Lock()
		defer mu.Unlock()
		if n++; n == 1 {
			return http.StatusBadGateway
		}
		return 0
	})
	rec := &recorder{}
	f.c.cfg.Activity = rec
	f.w.Secret = secret
	f.publish(ids(3)...)
	before := time.Now()
	f.round(3)
	f.round(3)
	as := rec.take()
	if len(as) != 2 {
		t.Fatalf("recorded %d attempts, want 2: %+v", len(as), as)
	}
	fail, ok := as[0], as[1]
	if fail.Outcome != activity.Failed || fail.Status != 502 || fail.ErrorClass != activity.ClassServer ||
		fail.Error != "status 502" || fail.Trigger != activity.TriggerLive || fail.Attempt != 1 {
		t.Errorf("failed attempt = %+v", fail)
	}
	if !fail.NextAttemptAt.After(before) || fail.NextAttemptAt.Before(fail.StartedAt) {
		t.Errorf("failed attempt next_attempt_at %v, started %v; want a time after it", fail.NextAttemptAt, fail.StartedAt)
	}
	if ok.Outcome != activity.Delivered || ok.Status != 200 || ok.ErrorClass != "" || ok.Error != "" ||
		ok.Trigger != activity.TriggerRetry || ok.Attempt != 2 || !ok.NextAttemptAt.IsZero() {
		t.Errorf("delivered attempt = %+v", ok)
	}
	for _, a := range as {
		if a.AccountID != "acct1" || a.WebhookID != "wh1" || a.Events != 3 || a.Bytes == 0 ||
			strings.Join(a.ExternalIDs, ",") != "ev00,ev01,ev02" || a.StartedAt.Before(before) || a.Duration <= 0 {
			t.Errorf("attempt = %+v, want account, webhook, 3 events with their ids, bytes, start and duration", a)
		}
		if u, err := parseV7(a.ID); err != nil {
			t.Errorf("attempt id %q: %v", a.ID, err)
		} else if u.Before(before.Add(-time.Second)) {
			t.Errorf("attempt id time %v before the test", u)
		}
	}
	if !ok.StartedAt.After(fail.StartedAt) || ok.ID <= fail.ID {
		t.Errorf("retry started %v (id %s), not after the failure %v (id %s)", ok.StartedAt, ok.ID, fail.StartedAt, fail.ID)
	}
}

// The poison search's requests are recorded in the order sent; only the
// whole batch and its halves that went back to the stream get a
// next_attempt_at.
func TestDeliverRecordsSearchInOrder(t *testing.T) {
	f := newDeliveryFixture(t, func(b []byte) int {
		if strings.Contains(string(b), `"ev05"`) {
			return http.StatusUnprocessableEntity
		}
		return 0
	})
	rec := &recorder{}
	f.c.cfg.Activity = rec
	f.publish(ids(16)...)
	f.round(16)
	first := rec.take()
	if len(first) != 1 || first[0].NextAttemptAt.IsZero() || first[0].ErrorClass != activity.ClassClient {
		t.Fatalf("first round recorded %+v, want one client_error with next_attempt_at", first)
	}
	f.round(16)
	as := rec.take()
	requests, _ := f.rc.snapshot()
	if len(as) != requests-1 {
		t.Fatalf("second round recorded %d attempts, receiver got %d requests in it", len(as), requests-1)
	}
	for i, a := range as {
		if i > 0 && a.StartedAt.Before(as[i-1].StartedAt) {
			t.Errorf("attempt %d started %v, before attempt %d (%v): log not in send order", i, a.StartedAt, i-1, as[i-1].StartedAt)
		}
		if !a.NextAttemptAt.IsZero() {
			t.Errorf("attempt %d (%s, %d events) has next_attempt_at, want none: the search settled every event", i, a.Outcome, a.Events)
		}
	}
	if last := as[len(as)-1]; last.Events != 1 || last.ExternalIDs[0] != "ev05" || last.Outcome != activity.Failed {
		t.Errorf("last attempt = %+v, want ev05 alone, refused", last)
	}
}

// parseV7 returns the time of a UUIDv7.
func parseV7(id string) (time.Time, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return time.Time{}, err
	}
	if u.Version() != 7 {
		return time.Time{}, errors.New("not a UUIDv7")
	}
	sec, nsec := u.Time().UnixTime()
	return time.Unix(sec, nsec), nil
}

// BenchmarkAttemptRecord is what recording adds to one request of a
// 1,000-event batch: its record (ids, attempt count from the messages'
// metadata, UUIDv7) handed to a recorder. Compare with the request
// itself (the bench's drain: about 14 ms per 1,000-event request here).
func BenchmarkAttemptRecord(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			f, _ := newBenchDelivery(b, n)
			o := outcome{kind: kindOK, status: 200, took: time.Millisecond, bytes: 1000 * n}
			b.ReportAllocs()
			for b.Loop() {
				f.record(span{0, n}, o)
			}
		})
	}
}

// newBenchDelivery is a delivery of n real JetStream messages (their
// metadata is parsed from the reply subject, as in production) to a
// recorder that keeps nothing.
func newBenchDelivery(b testing.TB, n int) (*delivery, jetstream.JetStream) {
	b.Helper()
	ctx := context.Background()
	js, err := jetstream.New(harness.Connect(b, harness.NATS(b)))
	if err != nil {
		b.Fatal(err)
	}
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "B", Subjects: []string{"b.>"}})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if _, err := js.Publish(ctx, "b.x", fmt.Appendf(nil, `{"data":{"id":"ev%d"}}`, i)); err != nil {
			b.Fatal(err)
		}
	}
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	msgs, err := fetch(ctx, cons, n, 0, 5*time.Second)
	if err != nil || len(msgs) != n {
		b.Fatalf("fetched %d of %d: %v", len(msgs), n, err)
	}
	evs := make([]batcher.Event, n)
	for i := range evs {
		evs[i] = batcher.Event{ExternalID: fmt.Sprintf("01HF7AYTK76RHR4F17G%07d", i)}
	}
	c := &courier{cfg: Config{Activity: activity.Discard{}}}
	return &delivery{c: c, w: subscriptions.Webhook{ID: "wh", AccountID: "acct", Secret: "whsec-0123456789"}, msgs: msgs, evs: evs}, js
}

// replyMsg is a message with only an ack subject.
type replyMsg struct {
	jetstream.Msg
	reply string
}

func (m replyMsg) Reply() string { return m.reply }

// numDelivered reads the ack subject as Metadata does, also after a
// redelivery, in both subject formats, and falls back to Metadata.
func TestNumDelivered(t *testing.T) {
	d, js := newBenchDelivery(t, 4)
	for _, m := range d.msgs[:2] {
		if err := m.Nak(); err != nil {
			t.Fatal(err)
		}
	}
	st, err := d.msgs[0].Metadata()
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(context.Background(), "B", st.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	again, err := fetch(context.Background(), cons, 2, 0, 5*time.Second)
	if err != nil || len(again) != 2 {
		t.Fatalf("redelivered %d, %v; want 2", len(again), err)
	}
	for _, m := range append(d.msgs[2:], again...) {
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if got := numDelivered(m); got != md.NumDelivered {
			t.Errorf("numDelivered(%s) = %d, want %d", m.Reply(), got, md.NumDelivered)
		}
	}
	if got := numDelivered(again[0]); got != 2 {
		t.Errorf("numDelivered of a redelivery = %d, want 2", got)
	}
	for reply, want := range map[string]uint64{
		"$JS.ACK.B.c.3.10.10.1700000000000000000.0":                   3,
		"$JS.ACK.hub.ACCHASH.B.c.5.10.10.1700000000000000000.0.token": 5,
	} {
		if got := numDelivered(replyMsg{reply: reply}); got != want {
			t.Errorf("numDelivered(%s) = %d, want %d", reply, got, want)
		}
	}
	spy := &spyMsg{meta: &jetstream.MsgMetadata{NumDelivered: 7}}
	if got := numDelivered(spy); got != 7 {
		t.Errorf("numDelivered without an ack subject = %d, want Metadata's 7", got)
	}
}

// During a staged rotation the rotation's secret signs (alone after its
// retire time, while Webhook.Secret still holds the previous one): an
// excerpt echoing either is redacted, in deliveries' attempts and in a
// test send's.
func TestAttemptScrubsRotationSecret(t *testing.T) {
	const prev, next = "whsec-previous-0123456789", "whsec-rotated-9876543210"
	d, _ := newBenchDelivery(t, 1)
	d.w.Secret = prev
	d.w.Rotation = &subscriptions.Rotation{ID: "r", Secret: next,
		PromoteAt: time.Now().Add(-2 * time.Hour), RetireAt: time.Now().Add(-time.Hour)}
	o := outcome{kind: kindStatus, status: 401, excerpt: "bad signature; I know " + prev + " and " + next}
	a := d.attempt(span{0, 1}, o)
	if strings.Contains(a.ResponseExcerpt, prev) || strings.Contains(a.ResponseExcerpt, next) {
		t.Errorf("excerpt %q keeps a secret", a.ResponseExcerpt)
	}
	if want := "bad signature; I know [redacted] and [redacted]"; a.ResponseExcerpt != want {
		t.Errorf("excerpt = %q, want %q", a.ResponseExcerpt, want)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "expected "+next+" not "+prev)
	}))
	defer srv.Close()
	c := &courier{cfg: Config{AllowInsecureEndpoints: true, DeliveryTimeout: 5 * time.Second, UserAgent: "t"}, client: srv.Client()}
	w := d.w
	w.EndpointURL = srv.URL
	ts := c.testSend(context.Background(), w)
	if ts.Status != 401 || strings.Contains(ts.ResponseExcerpt, prev) || strings.Contains(ts.ResponseExcerpt, next) {
		t.Errorf("test send attempt: status %d, excerpt %q; want 401 without the secrets", ts.Status, ts.ResponseExcerpt)
	}
}
