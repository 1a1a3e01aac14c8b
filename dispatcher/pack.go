package dispatcher

import (
	"errors"

	"github.com/webhookd/webhookd/batcher"
)

// pack groups evs into request bodies within both caps, in order, as
// consecutive spans. Every event must fit alone (prepare checks).
func pack(evs []batcher.Event, cfg batcher.Config, meta batcher.Meta) []span {
	groups, err := batcher.Split(evs, cfg, meta)
	if err != nil {
		// prepare set aside what fits in no body; one request per event
		// keeps every event deliverable should that ever be wrong.
		groups = make([][]batcher.Event, len(evs))
		for i := range evs {
			groups[i] = evs[i : i+1]
		}
	}
	parts := make([]span, 0, len(groups))
	lo := 0
	for _, g := range groups {
		parts = append(parts, span{lo, lo + len(g)})
		lo += len(g)
	}
	return parts
}

// appendBody appends the request body of evs to dst.
func appendBody(dst []byte, evs []batcher.Event, meta batcher.Meta) []byte {
	return batcher.AppendEnvelope(dst, evs, meta)
}

// reasonCode is the dead-letter subject token for a parse error.
func reasonCode(err error) string {
	switch {
	case errors.Is(err, batcher.ErrNotJSON):
		return "not_json"
	case errors.Is(err, batcher.ErrNoID):
		return "no_id"
	case errors.Is(err, batcher.ErrNotUTF8):
		return "not_utf8"
	case errors.Is(err, batcher.ErrNotObject):
		return "not_object"
	}
	return "invalid"
}
