// Package activity holds the attempt log's record: one Attempt per
// delivery request, made on any replica, for system webhooks and flow
// actions alike. The log is written off the hot path: a Recorder never
// blocks its caller.
package activity

import "time"

// Trigger says why a request was made.
type Trigger string

const (
	TriggerLive   Trigger = "live"   // first attempt of live traffic
	TriggerRetry  Trigger = "retry"  // events tried before
	TriggerReplay Trigger = "replay" // a replay asked for by an operator
	TriggerTest   Trigger = "test"   // a synthetic test send
)

// Outcome is what became of a request.
type Outcome string

const (
	Delivered Outcome = "delivered"
	Failed    Outcome = "failed"
)

// ErrorClass is the closed set of reasons a request failed. Each maps to
// a row of Klaviyo's webhook error table (seed 004) or to one of
// webhookd's own guards.
type ErrorClass string

const (
	ClassNone       ErrorClass = ""                  // delivered
	ClassConnect    ErrorClass = "unable_to_connect" // refused, reset, DNS, other network errors
	ClassRedirect   ErrorClass = "redirect"          // a 3xx: redirects are not followed
	ClassClient     ErrorClass = "client_error"      // a 4xx
	ClassServer     ErrorClass = "server_error"      // a 5xx
	ClassTLS        ErrorClass = "tls_error"         // handshake or certificate failure
	ClassTimeout    ErrorClass = "timed_out"         // no complete answer within the delivery timeout
	ClassBlocked    ErrorClass = "blocked_address"   // the endpoint resolves to a private address
	ClassUnaccepted ErrorClass = "unaccepted_2xx"    // a 2xx other than 200, 201 or 202 (or another unknown status)
	ClassInvalidURL ErrorClass = "invalid_endpoint"  // the endpoint URL itself is unusable
	// ClassInterrupted: the replica was paused mid-request (SIGSTOP, a VM
	// freeze), so the answer is unknown; the events are sent again at once
	// and the request does not count against the webhook.
	ClassInterrupted ErrorClass = "interrupted"
	// ClassRender: a flow webhook's body did not render, or rendered to
	// something that is not JSON. No request was made: Status and
	// Duration are 0, Error holds the template's reason. The event is
	// skipped at once.
	ClassRender ErrorClass = "render_error"
	// ClassNotLive: a flow webhook's retry came due after its action was
	// deleted or stopped being live. No request was made; the event is
	// skipped.
	ClassNotLive ErrorClass = "action_not_live"
)

// Attempt is one delivery request. WebhookID names a system webhook, or
// for a flow webhook the flow action (FlowID then names its flow).
type Attempt struct {
	ID              string // UUIDv7, so ids sort by time
	AccountID       string
	WebhookID       string
	FlowID          string // flow webhooks only
	ProfileID       string // flow webhooks only: the recipient
	Email           string // flow webhooks only: the recipient's email, "" if the event included none
	StartedAt       time.Time
	Duration        time.Duration
	Trigger         Trigger
	Outcome         Outcome
	Status          int // the HTTP status; 0 when no response came back
	ErrorClass      ErrorClass
	Error           string // short, secret-free text
	ResponseExcerpt string // the first ≤ 1 KiB of the response body
	Events          int
	Bytes           int
	Attempt         int       // how many times its events had been tried, this time included
	NextAttemptAt   time.Time // when it failed and will be tried again; zero otherwise
	ExternalIDs     []string
	// FirstAt is when its events were first tried (flow webhooks: the
	// triggering event's first attempt); zero in records written before
	// the field existed.
	FirstAt time.Time
	// Exhausted: it failed in a way that is retried, but it was the last
	// try allowed, so its events are given up.
	Exhausted bool
}

// Recorder takes attempts to the log. Record must not block: a recorder
// whose buffer is full drops the attempt and counts the drop.
type Recorder interface {
	Record(Attempt)
}

// Discard is a Recorder that keeps nothing.
type Discard struct{}

func (Discard) Record(Attempt) {}
