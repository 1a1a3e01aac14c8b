package dispatcher

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// sweep disables webhooks that stayed in error past DisableAfter even
// when no traffic is left to fail (their retries are parked in JetStream
// for up to BackoffMax). Every replica sweeps; the script re-checks, so
// a webhook is disabled once. It returns nil once ctx is done.
func sweep(ctx context.Context, cfg Config, states stateStore, log zerolog.Logger, stats *Stats) error {
	every := min(max(cfg.DisableAfter/20, 100*time.Millisecond), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		ids, err := states.DisableExpired(ctx, cfg.DisableAfter)
		if err != nil {
			continue // the reconciler reports Redis trouble
		}
		for _, id := range ids {
			stats.Disabled.Add(1)
			log.Warn().Str("webhook_id", id).Dur("duration_ms", cfg.DisableAfter).
				Msg("webhook disabled: in error longer than disable-after")
		}
	}
}
