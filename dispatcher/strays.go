package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Stray events. A stream subject such as event:klaviyo.> also captures
// subjects of four tokens or more (event:klaviyo.sent_sms.acme.extra):
// neither <topic> nor <topic>.<account>, so no webhook's consumer reads
// them and no partition does (the partition transform maps three-token
// subjects only). One durable consumer, strays, reads exactly those
// subjects and dead-letters each with reason bad_subject, in both
// consumption models: nothing the stream accepted stays unaccounted for.

// strayConsumer is the durable consumer of stray subjects.
const strayConsumer = "strays"

// strayReason is the dead-letter reason of a stray event.
const strayReason = "subject is not <topic> or <topic>.<account>"

// strayFilters are the subjects of the configured stream subjects that
// have more tokens than <topic>.<account>. The stream's subjects never
// overlap (JetStream refuses it), so neither do these.
func (c Config) strayFilters() []string {
	var fs []string
	for _, s := range c.Subjects {
		if f, ok := strayFilter(s); ok {
			fs = append(fs, f)
		}
	}
	return fs
}

// strayFilter is the part of stream subject s with four tokens or more:
// prefix.*.*.> for a prefix of fewer than three tokens followed by >, s
// itself when every subject it captures is that long, none otherwise.
func strayFilter(s string) (string, bool) {
	toks := strings.Split(s, ".")
	const want = topicTokens + 1 // tokens of <topic>.<account>
	if toks[len(toks)-1] != ">" {
		return s, len(toks) > want
	}
	prefix := toks[:len(toks)-1]
	for len(prefix) < want {
		prefix = append(prefix, "*")
	}
	return strings.Join(prefix, ".") + ".>", true
}

// strayConsumerConfig reads every stray subject from the stream's start:
// they were never deliverable, and each is dead-lettered once (the
// dead-letter stream deduplicates a second sighting).
func (c Config) strayConsumerConfig(filters []string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        strayConsumer,
		Description:    "webhookd events on subjects no webhook can receive (dead-lettered as bad_subject)",
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.ackWait(),
		MaxDeliver:     -1,
	}
}

// strays dead-letters stray events until ctx is done. Every replica runs
// it on the one durable consumer (they share its messages); it makes the
// consumer again if the server lost it.
func strays(ctx context.Context, cfg Config, js jetstream.JetStream, dead *deadLetterer, log zerolog.Logger) error {
	filters := cfg.strayFilters()
	if len(filters) == 0 {
		return nil
	}
	var cons jetstream.Consumer
	pause := time.Duration(0)
	for ctx.Err() == nil {
		if pause > 0 && !sleep(ctx, pause) {
			break
		}
		if cons == nil {
			c, err := ensureStrays(ctx, js, cfg, filters)
			if err != nil {
				if ctx.Err() == nil && pause == 0 {
					log.Warn().Err(err).Msg("stray-subject consumer; retrying")
				}
				pause = nextPause(pause)
				continue
			}
			cons = c
		}
		// One event with the long poll, then whatever else is there.
		msgs, err := fetch(ctx, cons, 1, 0, idleWait)
		if err == nil && len(msgs) > 0 {
			var more []jetstream.Msg
			more, err = fetch(ctx, cons, 99, 0, 0)
			msgs = append(msgs, more...)
		}
		for _, m := range msgs {
			dead.set(ctx, m, "bad_subject", strayReason)
		}
		if err != nil {
			if ctx.Err() == nil && pause == 0 {
				log.Warn().Err(err).Msg("fetching stray-subject events; retrying")
			}
			cons = nil
			pause = nextPause(pause)
			continue
		}
		pause = 0
	}
	return nil
}

// ensureStrays returns the stray consumer, made or brought in line with
// the configured subjects.
func ensureStrays(ctx context.Context, js jetstream.JetStream, cfg Config, filters []string) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, cfg.strayConsumerConfig(filters))
	if errors.Is(err, jetstream.ErrConsumerExists) {
		c, err = js.Consumer(ctx, cfg.Stream, strayConsumer)
	}
	if err != nil {
		return nil, fmt.Errorf("stray-subject consumer: %w", err)
	}
	return c, nil
}
