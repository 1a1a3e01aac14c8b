package console

import (
	"context"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// Plugins are the console's sections that depend on features built
// outside this package. Each is a small interface declared here, the
// consumer; a nil one makes its section say "not available in this
// build" (never a dead link or a form that cannot work). `webhookd
// serve` sets those that exist (cmd/webhookd/consoleplug.go).
type Plugins struct {
	// Backlog: events waiting for a webhook (delivery-state backlog).
	Backlog BacklogReader
	// Delivered: events delivered and failed attempts per time window
	// (the attempt log's counts).
	Delivered DeliveredCounter
	// Attempts: the attempt log.
	Attempts AttemptReader
	// Test: one synthetic event now.
	Test TestSender
	// Replay: redeliver a time window from the stream.
	Replay Replayer
	// Secrets: staged secret rotation.
	Secrets SecretRotator
	// Flows: flow webhooks (issue 9) and their template preview.
	Flows FlowReader
}

// UserError is an error a plug-in returns to show msg to the viewer with
// the HTTP status (e.g. 409 for a replay of a disabled webhook); any
// other error is a 500 whose text stays in the server log.
func UserError(status int, msg string) error { return &consoleError{status: status, msg: msg} }

// ErrUnavailable is what a plug-in returns when its feature is off in
// this process (e.g. the dispatcher runs without its extras).
var ErrUnavailable error = errUnavailable

// BacklogReader tells how many events wait for a webhook. It may be
// costly (a JetStream consumer per call in the partitioned model): the
// console calls it on a webhook's page, and in the list only within a
// small budget per refresh, keeping each figure for figureTTL.
type BacklogReader interface {
	Backlog(ctx context.Context, wh subscriptions.Webhook) (int64, error)
}

// Bucket is one time window of a webhook's deliveries.
type Bucket struct {
	Delivered int64 // events in delivered attempts
	Failed    int64 // failed attempts
}

// DeliveredCounter counts a webhook's deliveries in n windows of step
// from since, in one bounded read; partial is true when the read stopped
// at its budget before since, so older windows are undercounted.
type DeliveredCounter interface {
	Delivered(ctx context.Context, wh subscriptions.Webhook, since time.Time, step time.Duration, n int) (b []Bucket, partial bool, err error)
}

// Attempt is one delivery attempt as the console shows it.
type Attempt struct {
	ID              string
	At              time.Time
	Trigger         string // live, retry, replay, test
	Outcome         string // delivered, failed
	Status          int    // HTTP status; 0 = no response
	Events          int
	Duration        time.Duration
	ErrorClass      string // e.g. server_error, timed_out
	Error           string
	ResponseExcerpt string   // the start of the response body, as the endpoint sent it
	ExternalIDs     []string // of its events
	// Flow webhooks only: the recipient's profile id and email ("" when
	// the event carried none).
	ProfileID, Email string
}

// AttemptFilter narrows the attempt log; zero fields do not filter.
type AttemptFilter struct {
	Outcome    string
	Status     int
	Trigger    string
	ExternalID string
	Since      time.Time
	Until      time.Time
	Cursor     string
	Limit      int
}

// AttemptReader pages through a webhook's attempt log, newest first;
// next is "" on the last page. A bad filter value is a UserError (400).
type AttemptReader interface {
	Attempts(ctx context.Context, wh subscriptions.Webhook, f AttemptFilter) (attempts []Attempt, next string, err error)
}

// TestSender sends one synthetic event to the webhook now and returns
// the attempt.
type TestSender interface {
	SendTest(ctx context.Context, wh subscriptions.Webhook) (Attempt, error)
}

// Replay is one redelivery of a time window.
type Replay struct {
	ID       string
	From, To time.Time
	State    string // running, done, cancelled, failed
	Reason   string // failed: why
	Found    int64  // events of the window read so far
	Sent     int64  // of them, delivered
	Created  time.Time
	Finished time.Time
}

// Running reports whether the replay may still be cancelled.
func (r Replay) Running() bool { return r.State == "running" }

// Replayer starts, lists and cancels replays of a webhook.
type Replayer interface {
	StartReplay(ctx context.Context, wh subscriptions.Webhook, from, to time.Time) (Replay, error)
	Replays(ctx context.Context, wh subscriptions.Webhook) ([]Replay, error)
	CancelReplay(ctx context.Context, wh subscriptions.Webhook, id string) (Replay, error)
}

// SecretRotator starts a staged rotation to a new secret: both secrets
// sign until the current one retires after overlap. Its validation
// errors are UserErrors.
type SecretRotator interface {
	RotateSecret(ctx context.Context, wh subscriptions.Webhook, secret string, overlap time.Duration) error
}
