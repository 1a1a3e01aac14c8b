package batcher

// Part is the events of one request body, as [Pack] groups them.
type Part struct {
	// Start is the index of the part's first event in the slice given to
	// Pack: Events is events[Start:Start+len(Events)], which lets the
	// caller map each event back to its message.
	Start int
	// Events holds the part's events, a sub-slice of the slice given to
	// Pack with its capacity clipped, so that appending to it cannot
	// overwrite the next event.
	Events []Event
	// Size is the exact length of the part's body,
	// len(AppendEnvelope(nil, Events, m)) for the meta given to Pack or
	// any m with the same strings (see Meta.Timestamp).
	Size int
}

// Pack groups events, in order, into as few request bodies as the caps
// of cfg allow under meta, in one pass: each part has at most
// cfg.MaxEvents events and a body of at most cfg.MaxBytes bytes. An event
// that fits in no body even alone is left out, its index in events listed
// in tooLarge (in increasing order), and it ends the part before it; the
// caller dead-letters it with [ErrTooLarge] as the reason. Every event is
// thus in exactly one part or in tooLarge, and every part can be written
// with AppendEnvelope and sent: there is no error path.
//
// The body of a part may be written with a later meta.Timestamp than the
// one packed with: a timestamp has the same width for every year from 0
// to 9999. Pack keeps no state, so it is safe for concurrent use.
func Pack(events []Event, cfg Config, meta Meta) (parts []Part, tooLarge []int) {
	maxEvents, maxBytes := cfg.maxEvents(), cfg.maxBytes()
	over := Overhead(meta)
	start, size := 0, over // the open part is events[start:i]
	flush := func(end int) {
		if end > start {
			parts = append(parts, Part{Start: start, Events: events[start:end:end], Size: size})
		}
	}
	for i, e := range events {
		es := EventSize(e)
		switch {
		case over+es > maxBytes:
			flush(i)
			tooLarge = append(tooLarge, i)
			start, size = i+1, over
			continue
		case i-start == maxEvents || size+es > maxBytes:
			flush(i)
			start, size = i, over
		}
		size += es
	}
	flush(len(events))
	return parts, tooLarge
}
