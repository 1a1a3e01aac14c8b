package dispatcher

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// Registry identity. Redis holds the registry; a Redis that comes back
// empty (restarted on an empty data dir) or holding another deployment's
// data must never be acted on: read literally it says "no webhooks", and
// the reconciler would delete every consumer with its backlog (and a
// later restore would recreate them at their creation time and resend
// everything). So the registry carries an epoch, a random id created with
// the dataset (subscriptions.Store.EnsureEpoch; every write script
// creates one on an empty Redis), and the event stream records the epoch
// it is delivered for in its metadata. The reconciler acts only while the
// two agree; otherwise it leaves every consumer and runner as it is, says
// so once in the log and in the registry-mismatch gauge, and resumes by
// itself when the original registry is back. Config.AdoptRegistry accepts
// a replaced registry deliberately, once, at start-up.

// epochState is what checkEpoch found.
type epochState int

const (
	epochOK       epochState = iota // the registry is this deployment's
	epochMismatch                   // emptied or replaced: do not act on it
)

// checkEpoch compares the registry's epoch with the stream's record,
// recording it when the stream has none (a new deployment, an upgrade,
// or a NATS server that lost its store). adopt accepts a mismatch.
func (r *reconciler) checkEpoch(ctx context.Context, adopt bool) (epochState, string, string, error) {
	have, err := r.reg.Epoch(ctx)
	if err != nil {
		return epochMismatch, "", "", err
	}
	recorded, err := r.streams.epoch(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return epochMismatch, have, "", err
	}
	if have == recorded && have != "" {
		return epochOK, have, recorded, nil
	}
	if recorded != "" && !adopt {
		return epochMismatch, have, recorded, nil
	}
	if have == "" {
		if have, err = r.reg.EnsureEpoch(ctx); err != nil {
			return epochMismatch, "", recorded, err
		}
	}
	if err := r.streams.put(ctx, have); err != nil {
		return epochMismatch, have, recorded, err
	}
	if recorded != "" {
		r.log.Warn().Str("epoch", have).Str("previous_epoch", recorded).
			Msg("adopted the registry found in Redis as this deployment's (--adopt-registry)")
	}
	return epochOK, have, have, nil
}

// noteEpoch logs and counts a change between agreement and mismatch,
// once per change.
func (r *reconciler) noteEpoch(st epochState, have, recorded string) {
	was := r.stats.RegistryMismatch.Load() == 1
	switch {
	case st == epochMismatch && !was:
		r.stats.RegistryMismatch.Store(1)
		r.log.Error().Str("epoch", have).Str("recorded_epoch", recorded).
			Msg("the registry in Redis does not match the one this deployment delivers for (emptied or replaced?): " +
				"no consumer is created or deleted until the original registry is restored " +
				"(or webhookd serve --adopt-registry accepts this one)")
	case st == epochOK && was:
		r.stats.RegistryMismatch.Store(0)
		r.log.Info().Str("epoch", have).Msg("the registry in Redis is this deployment's again; reconciling")
	}
}
