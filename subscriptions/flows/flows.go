// Package flows keeps flow webhooks: Klaviyo flows made of one metric
// trigger and a chain of send-webhook actions, stored in Redis with a
// revision counter that delivery polls to reload its index, per-action
// outcome counters and a per-action concurrency semaphore.
package flows

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// Statuses of flows and actions (Klaviyo's; only live actions send).
const (
	StatusDraft    = "draft"
	StatusManual   = "manual"
	StatusLive     = "live"
	StatusDisabled = "disabled" // actions only
)

// ValidFlowStatus and ValidActionStatus report whether s is a status a
// flow, or an action, may have.
func ValidFlowStatus(s string) bool { return s == StatusDraft || s == StatusManual || s == StatusLive }
func ValidActionStatus(s string) bool {
	return ValidFlowStatus(s) || s == StatusDisabled
}

// Flow is one flow: a metric trigger and its send-webhook actions,
// linked from EntryActionID by each action's Next.
type Flow struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	TriggerID string `json:"trigger_id"` // a topic of the account, or a metric id events carry
	EntryID   string `json:"entry_action_id"`
	// Reentry is the reentry_criteria as accepted: nil, or re-entry
	// always allowed (duration 0, unit alltime), which is what delivery
	// does: every triggering event runs the flow.
	Reentry *Reentry  `json:"reentry,omitempty"`
	Actions []Action  `json:"actions"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Reentry is Klaviyo's reentry_criteria.
type Reentry struct {
	Duration int    `json:"duration"`
	Unit     string `json:"unit"`
}

// Action is one send-webhook action.
type Action struct {
	ID      string    `json:"id"`
	Status  string    `json:"status"`
	Next    string    `json:"next,omitempty"` // "" ends the chain
	Message Message   `json:"message"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Message is Klaviyo's FlowWebhook: where to POST what.
type Message struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// Action returns the action id of f.
func (f Flow) Action(id string) (Action, bool) {
	for _, a := range f.Actions {
		if a.ID == id {
			return a, true
		}
	}
	return Action{}, false
}

// Sentinel errors.
var (
	ErrNotFound = errors.New("flows: not found")
	ErrConflict = errors.New("flows: changed concurrently, try again")
)

// Header limits: a flow webhook carries the user's authentication
// headers, a handful; more or larger ones are mistakes or abuse.
const (
	MaxHeaders         = 20
	MaxHeaderNameLen   = 256
	MaxHeaderValueLen  = 4096
	MaxHeaderTotalSize = 16 << 10
)

// forbiddenHeaders are set by webhookd or by HTTP itself: hop-by-hop
// headers (RFC 9110 §7.6.1), framing and the ones delivery sets.
var forbiddenHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Transfer-Encoding": true,
	"Te": true, "Trailer": true, "Upgrade": true, "Proxy-Authorization": true, "Proxy-Authenticate": true,
	"Content-Length": true, "Host": true, "Content-Type": true, "X-Klaviyo-Flow-Id": true,
	"User-Agent": true, "Expect": true,
}

// HeaderError says which header is refused and why; it never holds the
// value.
type HeaderError struct {
	Name   string
	Reason string
}

func (e *HeaderError) Error() string { return fmt.Sprintf("header %q: %s", e.Name, e.Reason) }

// ValidateHeaders checks the user's headers: at most MaxHeaders, valid
// tokens as names, no forbidden header, values without control
// characters, bounded sizes.
func ValidateHeaders(h map[string]string) error {
	if len(h) > MaxHeaders {
		return &HeaderError{Reason: fmt.Sprintf("at most %d headers", MaxHeaders)}
	}
	total := 0
	seen := make(map[string]string, len(h))
	for name, value := range h {
		canon := textproto.CanonicalMIMEHeaderKey(name)
		if other, dup := seen[canon]; dup {
			// Which of the two would be sent is undefined: refuse both.
			a, b := min(name, other), max(name, other)
			return &HeaderError{Name: b, Reason: fmt.Sprintf("the same header as %q (header names are case-insensitive)", a)}
		}
		seen[canon] = name
		switch {
		case name == "" || len(name) > MaxHeaderNameLen || !validToken(name):
			return &HeaderError{Name: name, Reason: "not a valid header name"}
		case forbiddenHeaders[canon]:
			return &HeaderError{Name: name, Reason: "set by webhookd or by HTTP itself; it cannot be configured"}
		case len(value) > MaxHeaderValueLen:
			return &HeaderError{Name: name, Reason: fmt.Sprintf("value longer than %d bytes", MaxHeaderValueLen)}
		case strings.ContainsAny(value, "\r\n\x00"):
			return &HeaderError{Name: name, Reason: "value contains a line break or NUL"}
		}
		total += len(name) + len(value)
	}
	if total > MaxHeaderTotalSize {
		return &HeaderError{Reason: fmt.Sprintf("headers larger than %d bytes in total", MaxHeaderTotalSize)}
	}
	return nil
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// Mask shows a header value as Klaviyo's "partially hashed": its first
// two characters of values of 8 or more, the rest as asterisks.
func Mask(v string) string {
	if len(v) < 8 {
		return "********"
	}
	return v[:2] + "********"
}

// Apply sets h on req, each under its name as given.
func Apply(req *http.Request, h map[string]string) {
	for name, v := range h {
		req.Header.Set(name, v)
	}
}
