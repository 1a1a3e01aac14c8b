package dispatcher

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// catalogInterval is how often the stream's subjects are listed to grow
// the per-account topic catalogs.
const catalogInterval = 5 * time.Second

// catalogLoop adds every topic seen on the stream to its account's topic
// catalog, so webhooks can subscribe to topics beyond the built-in
// Klaviyo ones as soon as producers use them.
func (d *Dispatcher) catalogLoop(ctx context.Context) error {
	seen := make(map[string]bool)
	t := time.NewTicker(catalogInterval)
	defer t.Stop()
	for {
		d.scanSubjects(ctx, seen)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (d *Dispatcher) scanSubjects(ctx context.Context, seen map[string]bool) {
	st, err := d.js.Stream(ctx, d.cfg.Stream)
	if err != nil {
		return
	}
	for _, filter := range d.cfg.Subjects {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			return
		}
		for subj := range info.State.Subjects {
			if seen[subj] {
				continue
			}
			topic, account, err := ParseSubject(subj, d.cfg.DefaultAccount)
			if err != nil || !validAccount(account) {
				d.log.Warn().Str("subject", subj).Msg("events on a subject that is not <topic> or <topic>.<account>: no webhook can receive them")
				seen[subj] = true
				continue
			}
			if err := d.store.AddTopics(ctx, account, topic); err != nil {
				return // Redis away; next round
			}
			seen[subj] = true
		}
	}
}
