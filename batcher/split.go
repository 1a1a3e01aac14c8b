package batcher

import "fmt"

// EventSize returns the bytes e adds to an envelope, counting the comma
// that separates it from its neighbour. Together with [Overhead] it gives a
// body's exact length before it is written.
func EventSize(e Event) int {
	p := len(e.Payload)
	if p == 0 {
		p = len(nullPayload)
	}
	return 1 + itemFixed + stringLen(e.ExternalID) + stringLen(e.Topic) + p
}

// Overhead returns the bytes of an envelope that do not belong to its
// events: for one or more events,
//
//	len(AppendEnvelope(nil, events, meta)) == Overhead(meta) + Σ EventSize(e)
//
// (The first event has no comma, so Overhead is one byte less than an
// envelope without events, which is never sent.)
func Overhead(meta Meta) int {
	return envFixed - 1 + stringLen(meta.AccountID) + stringLen(meta.WebhookID) +
		timestampLen(meta.Timestamp) + stringLen(meta.Version)
}

// Size returns len(AppendEnvelope(nil, events, meta)) without writing.
func Size(events []Event, meta Meta) int {
	n := Overhead(meta)
	if len(events) == 0 {
		return n + 1
	}
	for _, e := range events {
		n += EventSize(e)
	}
	return n
}

// Fits reports whether e alone fits in a body under cfg. An event that does
// not can never be delivered and should be dead-lettered with [ErrTooLarge]
// as the reason.
//
// Deprecated: use [Pack], which reports the events that fit in no body
// while it groups the others.
func Fits(e Event, cfg Config, meta Meta) bool {
	return Overhead(meta)+EventSize(e) <= cfg.maxBytes()
}

// Split divides events, in order, into as few bodies as possible, each of
// at most cfg.MaxEvents events and an envelope of at most cfg.MaxBytes
// bytes under meta. The batches are consecutive sub-slices of events (with
// capacity clipped, so appending to one cannot overwrite the next): batch k
// starts at the sum of the lengths of the batches before it, which lets the
// caller map each event back to its message.
//
// If some event does not fit even alone (see [Fits]), Split returns an
// error wrapping [ErrTooLarge] that names the event's index, and no
// batches; callers filter such events out first. Split keeps no state, so
// it is safe for concurrent use.
//
// Deprecated: use [Pack], which has no error path: it leaves out the
// events that fit in no body and reports them.
func Split(events []Event, cfg Config, meta Meta) ([][]Event, error) {
	maxEvents, maxBytes := cfg.maxEvents(), cfg.maxBytes()
	over := Overhead(meta)
	var batches [][]Event
	start, size := 0, over
	for i, e := range events {
		es := EventSize(e)
		if over+es > maxBytes {
			return nil, fmt.Errorf("event %d: %d bytes, over %d: %w", i, over+es, maxBytes, ErrTooLarge)
		}
		if i > start && (i-start == maxEvents || size+es > maxBytes) {
			batches = append(batches, events[start:i:i])
			start, size = i, over
		}
		size += es
	}
	if start < len(events) {
		batches = append(batches, events[start:len(events):len(events)])
	}
	return batches, nil
}
