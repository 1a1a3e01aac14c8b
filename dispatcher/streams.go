package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// metaEpoch is the event stream's metadata key recording the registry
// epoch this deployment delivers for (see epoch.go).
const metaEpoch = "webhookd_registry_epoch"

// maxConsumers lifts nats-server's default limit of 1,000 consumers per
// stream (JSDefaultMaxConsumersPerStream, applied when a stream sets no
// limit): per-webhook consumption has one consumer per enabled webhook,
// partitioned consumption one per failing webhook on the retry stream. An
// account limit set by the server's operator still applies; a consumer
// it refuses makes its webhook undeliverable, said in its delivery state.
const maxConsumers = 1 << 30

// streams creates and describes the event, retry and dead-letter
// streams.
type streams struct {
	cfg Config
	js  jetstream.JetStream
	log zerolog.Logger
	// registryEpoch, when set, gives the registry's epoch (creating one
	// for an empty registry) to record on a new event stream.
	registryEpoch func(ctx context.Context) (string, error)
}

// ensure creates or updates the streams, retrying while NATS is
// unreachable (a replica may start before NATS).
func (s *streams) ensure(ctx context.Context) error {
	delay := 100 * time.Millisecond
	for {
		err := s.create(ctx)
		if err == nil {
			return nil
		}
		if !retryable(err) {
			return err
		}
		s.log.Warn().Err(err).Msg("creating streams; retrying")
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func retryable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) || isConnErr(err)
}

// create makes every stream exist as configured, and partitioned
// consumption's partition consumers.
func (s *streams) create(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.put(ctx, ""); err != nil {
		return err
	}
	c := s.cfg
	if err := s.apply(ctx, jetstream.StreamConfig{
		Name:        c.Stream + "_DEADLETTER",
		Description: "webhookd events set aside, with the reason in the Webhookd-Reason header",
		Subjects:    []string{c.DeadLetter + ".>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      7 * 24 * time.Hour,
		Storage:     jetstream.FileStorage,
		Duplicates:  10 * time.Minute, // collapses copies seen by several webhooks' consumers
		Replicas:    c.Replicas,
	}); err != nil {
		return err
	}
	if c.Partitions == 0 {
		return nil
	}
	if err := s.apply(ctx, c.retryStreamConfig()); err != nil {
		return err
	}
	// Every partition's consumer exists from the start, so no event falls
	// between the stream and its consumer.
	for k := range c.Partitions {
		if _, err := ensurePartition(ctx, s.js, c, k, true, s.log); err != nil {
			return err
		}
	}
	return nil
}

// put makes the event stream exist as configured. epoch "" keeps the
// recorded epoch; a new stream records the registry's.
func (s *streams) put(ctx context.Context, epoch string) error {
	c := s.cfg
	cfg := jetstream.StreamConfig{
		Name:         c.Stream,
		Description:  "webhookd events (subjects = topics)",
		Subjects:     c.Subjects,
		Retention:    jetstream.LimitsPolicy,
		MaxAge:       c.StreamMaxAge,
		Discard:      jetstream.DiscardOld,
		Storage:      jetstream.FileStorage,
		Duplicates:   2 * time.Minute,
		Replicas:     c.Replicas,
		MaxConsumers: maxConsumers,
	}
	if c.Partitions > 0 {
		cfg.SubjectTransform = partitionTransform(c.Partitions)
	}
	recorded, err := s.epoch(ctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound) && epoch == "" && s.registryEpoch != nil:
		if epoch, err = s.registryEpoch(ctx); err != nil {
			return err
		}
	case err != nil && !errors.Is(err, jetstream.ErrStreamNotFound):
		return err
	case epoch == "":
		epoch = recorded
	}
	if epoch != "" {
		cfg.Metadata = map[string]string{metaEpoch: epoch}
	}
	return s.apply(ctx, cfg)
}

// apply creates stream cfg, or updates it if it differs in what webhookd
// sets. A stream that already matches is left alone: every replica runs
// this at start-up, and a needless update would race other replicas'
// consumer creation inside nats-server for nothing.
func (s *streams) apply(ctx context.Context, cfg jetstream.StreamConfig) error {
	st, err := s.js.Stream(ctx, cfg.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		_, err = s.js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil // another replica made it
		}
	case err == nil && !sameStream(st.CachedInfo().Config, cfg):
		_, err = s.js.UpdateStream(ctx, cfg)
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	return nil
}

// sameStream compares what webhookd sets on a stream.
func sameStream(have, want jetstream.StreamConfig) bool {
	if have.Description != want.Description || !slices.Equal(have.Subjects, want.Subjects) ||
		have.Retention != want.Retention || have.MaxAge != want.MaxAge || have.Discard != want.Discard ||
		have.Storage != want.Storage || have.Duplicates != want.Duplicates ||
		have.Replicas != want.Replicas || have.MaxConsumers != want.MaxConsumers {
		return false
	}
	if (have.SubjectTransform == nil) != (want.SubjectTransform == nil) ||
		have.SubjectTransform != nil && *have.SubjectTransform != *want.SubjectTransform {
		return false
	}
	for k, v := range want.Metadata {
		if have.Metadata[k] != v {
			return false
		}
	}
	return true
}

// epoch is the registry epoch recorded on the event stream ("" if none).
func (s *streams) epoch(ctx context.Context) (string, error) {
	st, err := s.js.Stream(ctx, s.cfg.Stream)
	if err != nil {
		return "", err
	}
	return st.CachedInfo().Config.Metadata[metaEpoch], nil
}
