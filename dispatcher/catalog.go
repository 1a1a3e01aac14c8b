package dispatcher

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// catalogInterval is how often the stream's subjects are listed to grow
// the per-account topic catalogs.
const catalogInterval = 5 * time.Second

// topicCatalog is where topics seen on the stream are recorded.
type topicCatalog interface {
	AddTopics(ctx context.Context, account string, topics ...string) error
}

// catalog adds every topic seen on the stream to its account's topic
// catalog, so webhooks can subscribe to topics beyond the built-in
// Klaviyo ones as soon as producers use them. It returns nil once ctx is
// done.
func catalog(ctx context.Context, cfg Config, st *streams, cat topicCatalog, log zerolog.Logger) error {
	seen := make(map[string]bool)
	t := time.NewTicker(catalogInterval)
	defer t.Stop()
	for {
		scanSubjects(ctx, cfg, st.js, cat, log, seen)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func scanSubjects(ctx context.Context, cfg Config, js jetstream.JetStream, cat topicCatalog, log zerolog.Logger, seen map[string]bool) {
	st, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return
	}
	for _, filter := range cfg.Subjects {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			return
		}
		for subj := range info.State.Subjects {
			if seen[subj] {
				continue
			}
			topic, account, err := ParseSubject(subj, cfg.DefaultAccount)
			if err != nil || !validAccount(account) {
				log.Warn().Str("subject", subj).Msg("events on a subject that is not <topic> or <topic>.<account>: no webhook can receive them")
				seen[subj] = true
				continue
			}
			if err := cat.AddTopics(ctx, account, topic); err != nil {
				return // Redis away; next round
			}
			seen[subj] = true
		}
	}
}
