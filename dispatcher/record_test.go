package dispatcher

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/webhookd/webhookd/dispatcher/activity"
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
