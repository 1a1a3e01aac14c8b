package dispatcher

import (
	"errors"
	"time"

	"github.com/webhookd/webhookd/batcher"
	"github.com/webhookd/webhookd/subscriptions"
)

func (d *Dispatcher) meta(w subscriptions.Webhook, now time.Time) batcher.Meta {
	return batcher.Meta{AccountID: w.AccountID, WebhookID: w.ID, Timestamp: now, Version: batcher.Version}
}

func (d *Dispatcher) batchConfig() batcher.Config {
	return batcher.Config{MaxEvents: d.cfg.BatchMaxEvents, MaxBytes: d.cfg.BatchMaxBytes}
}

// split groups events into request bodies within both caps, in order;
// the bodies are consecutive sub-slices of evs.
func (d *Dispatcher) split(w subscriptions.Webhook, evs []batcher.Event) [][]batcher.Event {
	parts, err := batcher.Split(evs, d.batchConfig(), d.meta(w, time.Now()))
	if err != nil {
		// prepare dead-letters events that fit in no body, so this is
		// a bug; one body per event keeps every event deliverable.
		d.log.Error().Err(err).Str("webhook_id", w.ID).Msg("splitting batch")
		parts = make([][]batcher.Event, len(evs))
		for i := range evs {
			parts[i] = evs[i : i+1]
		}
	}
	return parts
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
