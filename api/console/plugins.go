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
// serve` sets those that exist.
type Plugins struct {
	// Backlog: events waiting for a webhook (delivery-state backlog).
	Backlog BacklogReader
	// Delivered: events delivered and failed in a time window (the
	// attempt log's counts).
	Delivered DeliveredCounter
	// Attempts: the attempt log.
	Attempts AttemptReader
	// Test: one synthetic event now.
	Test TestSender
	// Replay: redeliver a time window from the stream.
	Replay Replayer
	// Secrets: staged secret rotation.
	Secrets SecretRotator
}

// BacklogReader tells how many events wait for a webhook.
type BacklogReader interface {
	Backlog(ctx context.Context, wh subscriptions.Webhook) (int64, error)
}

// DeliveredCounter counts a webhook's delivered and failed events since
// a time.
type DeliveredCounter interface {
	Delivered(ctx context.Context, webhookID string, since time.Time) (delivered, failed int64, err error)
}

// Attempt is one delivery attempt as the console shows it.
type Attempt struct {
	ID         string
	At         time.Time
	Trigger    string // live, replay, test
	Outcome    string // e.g. delivered, failed, timeout
	Status     int    // HTTP status; 0 = no response
	Events     int
	Duration   time.Duration
	Error      string
	ExternalID string // of the first event, for the filter
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
// next is "" on the last page.
type AttemptReader interface {
	Attempts(ctx context.Context, webhookID string, f AttemptFilter) (attempts []Attempt, next string, err error)
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
	State    string // e.g. running, done, cancelled
	Sent     int64
	Total    int64
}

// Replayer starts and lists replays of a webhook.
type Replayer interface {
	StartReplay(ctx context.Context, wh subscriptions.Webhook, from, to time.Time) (Replay, error)
	Replays(ctx context.Context, wh subscriptions.Webhook) ([]Replay, error)
}

// SecretRotator starts a staged rotation to a new secret: both secrets
// sign during overlap.
type SecretRotator interface {
	RotateSecret(ctx context.Context, wh subscriptions.Webhook, secret string, overlap time.Duration) error
}
