package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api/console"
	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/dispatcher/activity"
	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/test/harness"
)

// The attempt log's plug-in on a real log: the console's filter becomes
// the reader's query, pages chain, and the counts fall in their windows.
func TestConsoleLogPlug(t *testing.T) {
	js, err := jetstream.New(harness.Connect(t, harness.NATS(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := activity.Ensure(ctx, js, activity.Config{}); err != nil {
		t.Fatal(err)
	}
	w := activity.NewWriter(activity.Config{}, js, zerolog.Nop())
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	t.Cleanup(func() { cancel(); <-done })

	now := time.Now().UTC().Truncate(time.Microsecond)
	hourAgo := now.Add(-time.Hour)
	mk := func(webhook string, at time.Time, trig activity.Trigger, out activity.Outcome, status, events int, ext string) activity.Attempt {
		a := activity.Attempt{ID: uuid.Must(uuid.NewV7()).String(), AccountID: "acct", WebhookID: webhook, StartedAt: at,
			Duration: 5 * time.Millisecond, Trigger: trig, Outcome: out, Status: status, Events: events, ExternalIDs: []string{ext}}
		if out == activity.Failed {
			a.ErrorClass, a.Error, a.ResponseExcerpt = activity.ClassServer, "status 503", "<h1>down</h1>"
		}
		return a
	}
	recorded := []activity.Attempt{
		mk("wh", now.Add(-2*time.Hour), activity.TriggerLive, activity.Delivered, 200, 9, "e0"), // before the hour
		mk("wh", hourAgo.Add(12*time.Minute), activity.TriggerLive, activity.Delivered, 200, 3, "e1"),
		mk("wh", hourAgo.Add(13*time.Minute), activity.TriggerRetry, activity.Failed, 503, 4, "e2"),
		mk("wh", now.Add(-2*time.Minute), activity.TriggerTest, activity.Delivered, 200, 2, "e3"),
		mk("other", now.Add(-2*time.Minute), activity.TriggerLive, activity.Delivered, 200, 50, "e4"),
	}
	for _, a := range recorded {
		w.Record(a)
	}
	deadline := time.Now().Add(30 * time.Second)
	for w.Stats().Written.Load() < int64(len(recorded)) {
		if time.Now().After(deadline) {
			t.Fatalf("written %d attempts, want %d", w.Stats().Written.Load(), len(recorded))
		}
		time.Sleep(10 * time.Millisecond)
	}

	p := logPlug{r: activity.NewReader(activity.Config{}, js)}
	wh := subscriptions.Webhook{ID: "wh", AccountID: "acct"}
	buckets, partial, err := p.Delivered(ctx, wh, hourAgo, 5*time.Minute, 12)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]console.Bucket, 12)
	want[2] = console.Bucket{Delivered: 3, Failed: 1}
	want[11] = console.Bucket{Delivered: 2}
	if partial || fmt.Sprint(buckets) != fmt.Sprint(want) {
		t.Errorf("Delivered = %v (partial %v), want %v", buckets, partial, want)
	}

	ids := func(f console.AttemptFilter) string {
		t.Helper()
		if f.Limit == 0 {
			f.Limit = 50
		}
		as, _, err := p.Attempts(ctx, wh, f)
		if err != nil {
			t.Fatalf("Attempts(%+v): %v", f, err)
		}
		var out []string
		for _, a := range as {
			out = append(out, a.ExternalIDs...)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		f    console.AttemptFilter
		want string
	}{
		{console.AttemptFilter{}, "e3,e2,e1,e0"},
		{console.AttemptFilter{Outcome: "failed"}, "e2"},
		{console.AttemptFilter{Status: 503}, "e2"},
		{console.AttemptFilter{Trigger: "test"}, "e3"},
		{console.AttemptFilter{ExternalID: "e1"}, "e1"},
		{console.AttemptFilter{Since: now.Add(-10 * time.Minute)}, "e3"},
		// The reader's hints take the log's store times (now here) as
		// within minutes of the start: Until stays that close to now.
		{console.AttemptFilter{Since: hourAgo, Until: now.Add(-time.Minute)}, "e3,e2,e1"},
		{console.AttemptFilter{Since: hourAgo, Until: now.Add(-3 * time.Minute)}, "e2,e1"},
		{console.AttemptFilter{Outcome: "delivered", Trigger: "live"}, "e1,e0"},
	} {
		if got := ids(tc.f); got != tc.want {
			t.Errorf("Attempts(%+v) = %s, want %s", tc.f, got, tc.want)
		}
	}
	as, _, err := p.Attempts(ctx, wh, console.AttemptFilter{Outcome: "failed", Limit: 1})
	if err != nil || len(as) != 1 || as[0].ErrorClass != "server_error" || as[0].ResponseExcerpt != "<h1>down</h1>" || as[0].Status != 503 {
		t.Errorf("failed attempt = %+v, %v; want its class, status and excerpt", as, err)
	}

	// Pages of two chain without gaps or repeats.
	var got []string
	cursor := ""
	for range 4 {
		as, next, err := p.Attempts(ctx, wh, console.AttemptFilter{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			got = append(got, a.ExternalIDs...)
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	if strings.Join(got, ",") != "e3,e2,e1,e0" {
		t.Errorf("pages of 2 = %v, want e3,e2,e1,e0", got)
	}

	for _, f := range []console.AttemptFilter{{Outcome: "maybe"}, {Trigger: "cron"}, {Cursor: "abc"}, {Cursor: "0"}} {
		if _, _, err := p.Attempts(ctx, wh, f); err == nil || !strings.HasPrefix(err.Error(), "console: ") {
			t.Errorf("Attempts(%+v) = %v, want an error the console shows", f, err)
		}
	}
}

// The dispatcher's errors become the messages the API gives too.
func TestConsoleDispatchErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{dispatcher.ErrNoSlot, "slot of this webhook is in use"},
		{dispatcher.ErrWebhookDisabled, "disabled; enable it"},
		{fmt.Errorf("%w (oldest kept: 2026-12-01T00:00:00Z)", dispatcher.ErrReplayWindow), "oldest event the stream still keeps"},
	} {
		got := dispatchErr(tc.err)
		if got == nil || !strings.Contains(got.Error(), tc.want) || !strings.HasPrefix(got.Error(), "console: ") {
			t.Errorf("dispatchErr(%v) = %v, want a console message with %q", tc.err, got, tc.want)
		}
	}
	if got := dispatchErr(dispatcher.ErrNotAvailable); !errors.Is(got, console.ErrUnavailable) {
		t.Errorf("dispatchErr(ErrNotAvailable) = %v, want console.ErrUnavailable", got)
	}
	other := errors.New("nats: timeout")
	if got := dispatchErr(other); got != other { //nolint:errorlint // the very error, not one wrapping it
		t.Errorf("dispatchErr(%v) = %v, want it unchanged (a 500)", other, got)
	}
}

// The rotation plug-in applies the API's rules and the store's refusal
// of a second rotation in its window.
func TestConsoleRotatePlug(t *testing.T) {
	store := subscriptions.New(harness.StartRedis(t).Client(t), subscriptions.Config{})
	ctx := context.Background()
	if err := store.AddTopics(ctx, "acct", "event:klaviyo.sent_sms"); err != nil {
		t.Fatal(err)
	}
	wh, err := store.Create(ctx, subscriptions.NewWebhook{AccountID: "acct", Name: "r", EndpointURL: "https://example.com/in",
		Secret: "old-secret-0123456789", Topics: []string{"event:klaviyo.sent_sms"}})
	if err != nil {
		t.Fatal(err)
	}
	p := rotatePlug{store: store}
	for _, tc := range []struct {
		secret  string
		overlap time.Duration
		want    string
	}{
		{"short", time.Hour, "16 to 256 bytes"},
		{strings.Repeat("x", 257), time.Hour, "16 to 256 bytes"},
		{"a-long-enough-secret", 31 * 24 * time.Hour, "at most 720h"},
	} {
		if err := p.RotateSecret(ctx, wh, tc.secret, tc.overlap); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RotateSecret(%d bytes, %v) = %v, want %q", len(tc.secret), tc.overlap, err, tc.want)
		}
	}
	before := time.Now()
	if err := p.RotateSecret(ctx, wh, "a-long-enough-secret", 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := store.Get(ctx, "acct", wh.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rotation == nil || got.Rotation.Secret != "a-long-enough-secret" || got.Rotation.RetireAt.Before(before.Add(2*time.Hour-time.Second)) {
		t.Errorf("rotation = %+v, want the new secret retiring the old one in 2h", got.Rotation)
	}
	if err := p.RotateSecret(ctx, got, "another-long-secret", time.Hour); err == nil || !strings.Contains(err.Error(), "already in its window") {
		t.Errorf("second rotation = %v, want the pending refusal", err)
	}
}
