// Package subscriptions owns webhook records and their delivery state
// machine (enabled, error_since, disable), accounts and API keys, and the
// per-account topic catalog. Every Redis key and Lua script that touches
// them lives here; redis.Nil never leaves this package.
package subscriptions

import (
	"errors"
	"time"
)

// Errors callers branch on.
var (
	// ErrNotFound means there is no webhook with that id in that account.
	// Another account's webhook is ErrNotFound too, so ids do not leak.
	ErrNotFound = errors.New("subscriptions: not found")
	// ErrLimit means the account already has the maximum number of
	// webhooks.
	ErrLimit = errors.New("subscriptions: webhook limit reached")
	// ErrUnknownTopic means a topic id is not in the account's catalog.
	// The returned error is a *TopicError wrapping it.
	ErrUnknownTopic = errors.New("subscriptions: unknown topic")
	// ErrInvalid means a field or argument breaks a rule the store
	// enforces (empty name, empty endpoint or secret, a malformed
	// cursor). The API validates first; this guards other callers.
	ErrInvalid = errors.New("subscriptions: invalid webhook")
)

// TopicError names the topic at fault and its index in the request.
type TopicError struct {
	Index int
	Topic string
}

func (e *TopicError) Error() string { return "subscriptions: unknown topic " + e.Topic }
func (e *TopicError) Unwrap() error { return ErrUnknownTopic }

// Webhook is one subscription: where to deliver which topics of one account.
type Webhook struct {
	ID          string
	AccountID   string
	Name        string
	Description *string // nil = no description (JSON null)
	EndpointURL string  // full URL; the API shows only scheme://host
	Secret      string  // HMAC key; write-only in the API, never logged
	Enabled     bool
	Topics      []string // sorted, unique
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// ActiveSince is when delivery last (re)started: creation, or the last
	// switch from enabled=false to true. Only events published after it
	// are delivered (the consumer's start time), so a re-enable never
	// backfills. It is Redis's clock to the microsecond (older records:
	// the millisecond; see activeTime).
	ActiveSince time.Time
	// Rotation is the staged secret change in progress, nil when there
	// is none (see Secrets and Store.Rotate). A pointer, so the
	// dispatcher's index pays one word for webhooks that never rotate.
	Rotation *Rotation
	State    DeliveryState
}

// DeliveryState is the error state the dispatcher maintains.
type DeliveryState struct {
	ErrorSince          time.Time // zero = healthy
	ConsecutiveFailures int
	LastStatus          int    // HTTP status of the last failed request; 0 = no response
	LastError           string // short classification, never a secret
	LastFailureAt       time.Time
	LastSuccessAt       time.Time
	NextAttemptAt       time.Time // while in error: no request before this
	DisabledAt          time.Time
	DisabledReason      string
	// LastAutoDisabledAt and LastAutoDisabledReason record the last
	// automatic disable (disable-after); unlike DisabledAt and
	// DisabledReason a re-enable keeps them, so the reason stays readable.
	LastAutoDisabledAt     time.Time
	LastAutoDisabledReason string
	// UndeliverableReason says why the dispatcher cannot deliver the
	// webhook at all (e.g. its consumer cannot be created); "" when it
	// can. See Store.SetUndeliverable.
	UndeliverableReason string
	// Retrying means the webhook's events wait on its own retry subject
	// rather than being delivered from the shared partitions (partitioned
	// consumption only; see Store.SetRetrying).
	Retrying bool
}

// NewWebhook is what Create needs.
type NewWebhook struct {
	AccountID   string
	Name        string
	Description *string
	EndpointURL string
	Secret      string
	Topics      []string
}

// Patch is a partial update: nil fields stay unchanged.
type Patch struct {
	Name *string
	// SetDescription with Description == nil clears the description.
	SetDescription bool
	Description    *string
	EndpointURL    *string
	Secret         *string
	Enabled        *bool
	Topics         *[]string // replaces the whole topic set
}
