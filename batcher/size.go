package batcher

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
