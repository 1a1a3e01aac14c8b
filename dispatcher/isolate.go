package dispatcher

import (
	"context"
	"fmt"
	"net/http"
)

// Isolating an event the receiver keeps refusing. A batch that a receiver
// refuses every time because of one of its events (JSON its parser
// rejects, a payload it cannot store, a body too large for it) would
// otherwise be retried whole until the webhook is disabled, and every good
// event in it lost with the backlog. So a refused part is split in halves
// and each half sent on its own, down to the one event at fault, which is
// tried alone poisonTries times and then set aside on the dead-letter
// subject (code "rejected") with the receiver's answer, while the rest is
// delivered.
//
// The search must not turn an outage into data loss or into load on a
// struggling receiver:
//   - only answers about content start it: 4xx and 5xx statuses except
//     408, 429, 502, 503 and 504, which speak of the endpoint's health;
//   - it starts once the events were refused before (a second attempt),
//     at once for 413, or when another part of this delivery succeeded;
//   - every resend of events just refused waits BackoffBase first, so a
//     receiver sees retries of an event at least the backoff apart;
//   - when both halves fail and nothing in this delivery has succeeded,
//     the endpoint is treated as down: the usual backoff applies, and the
//     search cost two extra requests;
//   - an event is set aside only when the endpoint accepted other events
//     in the same delivery (or refused it for its size, 413).
//
// Known limit: two refused events in different halves of a batch, with
// nothing else accepted in that delivery, look like an outage; each later
// redelivery regroups events, which usually separates them.

// poisonTries is how many times, in all, an event is sent alone before it
// is set aside. Four keeps a merely flapping endpoint (random 500s) from
// having a good event set aside: each try must come back with a content
// refusal, which at one 500 in eight is a 1-in-500 chance.
const poisonTries = 4

// isolation is what isolate concluded about a failed part.
type isolation int

const (
	outage   isolation = iota // the failure stands: back off and retry the part
	resolved                  // the part is settled: delivered or set aside
	lost                      // the lease was lost: hand everything back now
)

// refusesContent reports whether o is an answer about the request's
// content rather than the endpoint's health.
func refusesContent(o outcome) bool {
	if o.kind != kindStatus || o.status < 400 || o.status > 599 {
		return false
	}
	switch o.status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return false
	}
	return true
}

// isolate decides what to do with part s, which just failed with o.
func (d *delivery) isolate(ctx context.Context, s span, o outcome) isolation {
	if !refusesContent(o) {
		return outage
	}
	if o.status != http.StatusRequestEntityTooLarge && !d.delivered && d.attempts(s) < 2 {
		return outage
	}
	return d.search(ctx, s, o)
}

// search finds the refused events of s, which failed with o.
func (d *delivery) search(ctx context.Context, s span, o outcome) isolation {
	if s.len() == 1 {
		return d.alone(ctx, s, o)
	}
	mid := s.lo + s.len()/2
	a, b := span{s.lo, mid}, span{mid, s.hi}
	if !sleep(ctx, d.c.cfg.BackoffBase) {
		return lost
	}
	oa, sent := d.send(ctx, a)
	if !sent {
		return lost
	}
	ob, sent := d.send(ctx, b)
	if !sent {
		return lost
	}
	switch {
	case oa.ok() && ob.ok():
		return resolved
	case !oa.ok() && !ob.ok():
		tooLarge := oa.status == http.StatusRequestEntityTooLarge || ob.status == http.StatusRequestEntityTooLarge
		if !d.delivered && !tooLarge {
			return outage
		}
		if r := d.searchFailed(ctx, a, oa); r != resolved {
			return r
		}
		return d.searchFailed(ctx, b, ob)
	case !oa.ok():
		return d.searchFailed(ctx, a, oa)
	default:
		return d.searchFailed(ctx, b, ob)
	}
}

// searchFailed goes on searching a half that failed with o, unless o is
// not about content (then that half's failure stands).
func (d *delivery) searchFailed(ctx context.Context, s span, o outcome) isolation {
	if !refusesContent(o) {
		return outage
	}
	return d.search(ctx, s, o)
}

// alone retries the single event of s, which failed with o, until it has
// been tried alone poisonTries times; then it is set aside if the
// endpoint accepts other events (or refused this one for its size).
func (d *delivery) alone(ctx context.Context, s span, o outcome) isolation {
	c := d.c
	for try := 1; try < poisonTries; try++ {
		if !sleep(ctx, c.cfg.BackoffBase) {
			return lost
		}
		var sent bool
		if o, sent = d.send(ctx, s); !sent {
			return lost
		}
		if o.ok() {
			return resolved
		}
		if !refusesContent(o) {
			return outage
		}
	}
	if !d.delivered && o.status != http.StatusRequestEntityTooLarge {
		return outage
	}
	i := s.lo
	if d.settled[i].Swap(true) {
		return resolved
	}
	c.dead.set(ctx, d.msgs[i], "rejected", fmt.Sprintf(
		"receiver refused this event alone %d times (%s) while accepting the events sent with it", poisonTries, o))
	return resolved
}
