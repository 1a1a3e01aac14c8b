package dispatcher

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/dispatcher/activity"
	"github.com/webhookd/webhookd/subscriptions"
)

// Recording requests in the attempt log (Config.Activity). Every request
// a replica sends is recorded once, by that replica, after its outcome is
// known, so nothing is built on the hot path before the answer: the
// record is one struct, one slice of the events' ids (strings shared with
// the batch) and the response excerpt, handed to a Recorder that never
// blocks.
//
//   - A request not sent (kindNotSent: the lease could run out first, or
//     the lease was lost before it) is not recorded: nothing reached the
//     endpoint, and the events are handed back untouched.
//   - An interrupted request (kindInterrupted: this replica was paused
//     mid-request) is recorded as failed with error class "interrupted"
//     and no status: it was sent but its answer is unknown; its events go
//     back to the stream at once and it does not count against the
//     webhook.
//   - An endpoint refused before sending (invalid URL, blocked address)
//     is recorded: it is the webhook's failure and the reason matters.
//
// next_attempt_at is set on the failed requests after which their events
// went back to the stream for a retry after the backoff (fail), to when
// the retry is due. A failed request whose events were resent within the
// same delivery (the poison search in isolate.go) leaves it null. So a
// failure is held until the delivery knows which it was; held failures
// are recorded before any later success, keeping the log in send order.

// excerptMax is how much of a response body the attempt log keeps.
const excerptMax = 1 << 10

// record logs request s of d, which ended with o.
func (d *delivery) record(s span, o outcome) {
	a := d.attempt(s, o)
	if o.ok() {
		d.flushFailures(time.Time{})
		d.c.cfg.Activity.Record(a)
		return
	}
	d.failures = append(d.failures, a)
}

// flushFailures records the held failures, with next as their
// next_attempt_at (zero: none scheduled).
func (d *delivery) flushFailures(next time.Time) {
	for i := range d.failures {
		d.failures[i].NextAttemptAt = next
		d.c.cfg.Activity.Record(d.failures[i])
	}
	d.failures = d.failures[:0]
}

// attempt is the attempt-log record of request s, which ended with o.
func (d *delivery) attempt(s span, o outcome) activity.Attempt {
	ids := make([]string, s.len())
	for i := range ids {
		ids[i] = d.evs[s.lo+i].ExternalID
	}
	n := uint64(1)
	for _, m := range d.msgs[s.lo:s.hi] {
		n = max(n, numDelivered(m))
		if t, ok := m.(interface{ markTried() }); ok {
			t.markTried()
		}
	}
	trigger := d.trigger
	if trigger == "" {
		trigger = activity.TriggerLive
		if n > 1 {
			trigger = activity.TriggerRetry
		}
	}
	a := activity.Attempt{
		ID:              uuidV7(),
		AccountID:       d.w.AccountID,
		WebhookID:       d.w.ID,
		StartedAt:       o.started,
		Duration:        o.took,
		Trigger:         trigger,
		Outcome:         activity.Delivered,
		Status:          o.status,
		ResponseExcerpt: scrub(o.excerpt, secretsOf(&d.w)...),
		Events:          s.len(),
		Bytes:           o.bytes,
		Attempt:         int(n),
		ExternalIDs:     ids,
	}
	if !o.ok() {
		a.Outcome, a.ErrorClass, a.Error = activity.Failed, o.class(), o.String()
	}
	return a
}

// class maps o to the attempt log's closed set of error classes (seed
// 004's table plus webhookd's own guards).
func (o outcome) class() activity.ErrorClass {
	switch o.kind {
	case kindOK:
		return activity.ClassNone
	case kindStatus:
		switch {
		case o.status >= 300 && o.status < 400:
			return activity.ClassRedirect
		case o.status >= 400 && o.status < 500:
			return activity.ClassClient
		case o.status >= 500 && o.status < 600:
			return activity.ClassServer
		}
		return activity.ClassUnaccepted
	case kindTimeout:
		return activity.ClassTimeout
	case kindTLS:
		return activity.ClassTLS
	case kindBlocked:
		return activity.ClassBlocked
	case kindInvalid:
		return activity.ClassInvalidURL
	case kindInterrupted:
		return activity.ClassInterrupted
	}
	return activity.ClassConnect // refused, reset, DNS, other network errors
}

// scrub makes a response excerpt safe to keep: valid UTF-8, and without
// the webhook's secrets should the receiver echo one (a secret shorter
// than 8 bytes is not searched for: it would match ordinary text).
func scrub(excerpt string, secrets ...string) string {
	if excerpt == "" {
		return ""
	}
	if !utf8.ValidString(excerpt) {
		excerpt = strings.ToValidUTF8(excerpt, "\uFFFD")
	}
	for _, secret := range secrets {
		if len(secret) >= 8 && strings.Contains(excerpt, secret) {
			excerpt = strings.ReplaceAll(excerpt, secret, "[redacted]")
		}
	}
	return excerpt
}

// secretsOf are every secret w holds: its own and, during a staged
// rotation, the rotation's (which signs, and after its retire time signs
// alone, while w.Secret still holds the previous one).
func secretsOf(w *subscriptions.Webhook) []string {
	if w.Rotation == nil {
		return []string{w.Secret}
	}
	return []string{w.Secret, w.Rotation.Secret}
}

var excerptPool = sync.Pool{New: func() any { return new([excerptMax]byte) }}

// readExcerpt reads the first excerptMax bytes of resp's body, then
// drains up to 64 KiB more so the connection is reused.
func readExcerpt(resp *http.Response) string {
	bp := excerptPool.Get().(*[excerptMax]byte)
	defer excerptPool.Put(bp)
	buf := bp[:]
	n := 0
	for n < len(buf) {
		m, err := resp.Body.Read(buf[n:])
		n += m
		if err != nil {
			return string(buf[:n])
		}
	}
	drain(resp)
	return string(buf[:n])
}

// numDelivered is how many times m's event has been tried, this time
// included: its delivery count, plus the tries a retry copy carries.
func numDelivered(m jetstream.Msg) uint64 {
	var prior uint64 // tries before a move to the retry subject
	if p, ok := m.(interface{ priorTries() uint64 }); ok {
		prior = p.priorTries()
	}
	return prior + deliveryCount(m)
}

// deliveryCount is m's JetStream delivery count. It reads the count from the ack
// subject without allocating ($JS.ACK.<stream>.<consumer>.<delivered>...,
// or with a domain and account hash after $JS.ACK: 9 or 12+ tokens), and
// falls back to Metadata for anything else (a partition's share): the
// record of a 1,000-event request costs 1,000 of these.
func deliveryCount(m jetstream.Msg) uint64 {
	const prefix = "$JS.ACK."
	reply := m.Reply()
	if strings.HasPrefix(reply, prefix) {
		tokens := strings.Count(reply, ".") + 1
		idx := -1
		switch {
		case tokens == 9:
			idx = 4
		case tokens >= 12:
			idx = 6
		}
		if idx >= 0 {
			if n, ok := tokenUint(reply, idx); ok {
				return n
			}
		}
	}
	md, err := m.Metadata()
	if err != nil {
		return 1
	}
	return md.NumDelivered
}

// tokenUint parses the idx-th dot-separated token of s as a number.
func tokenUint(s string, idx int) (uint64, bool) {
	for range idx {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return 0, false
		}
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = s[:i]
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}
