package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// metaEpoch is the event stream's metadata key recording the registry
// epoch this deployment delivers for (see epoch.go).
const metaEpoch = "webhookd_registry_epoch"

// maxConsumers lifts nats-server's default limit of 1,000 consumers per
// stream (JSDefaultMaxConsumersPerStream, applied when a stream sets no
// limit): there is one consumer per enabled webhook. An account limit
// set by the server's operator still applies; a consumer it refuses makes
// its webhook undeliverable, said in its delivery state (reconcile.go).
const maxConsumers = 1 << 30

// streams creates and describes the event and dead-letter streams.
type streams struct {
	cfg Config
	js  jetstream.JetStream
	log zerolog.Logger
}

// ensure creates or updates both streams, retrying while NATS is
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

// create creates or updates the streams, keeping the recorded registry
// epoch of an existing event stream.
func (s *streams) create(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	epoch, err := s.epoch(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	if err := s.put(ctx, epoch); err != nil {
		return err
	}
	c := s.cfg
	if _, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        c.Stream + "_DEADLETTER",
		Description: "webhookd events set aside, with the reason in the Webhookd-Reason header",
		Subjects:    []string{c.DeadLetter + ".>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      7 * 24 * time.Hour,
		Storage:     jetstream.FileStorage,
		Duplicates:  10 * time.Minute, // collapses copies seen by several webhooks' consumers
		Replicas:    c.Replicas,
	}); err != nil {
		return fmt.Errorf("stream %s_DEADLETTER: %w", c.Stream, err)
	}
	if c.Partitions == 0 {
		return nil
	}
	if _, err := s.js.CreateOrUpdateStream(ctx, c.retryStreamConfig()); err != nil {
		return fmt.Errorf("stream %s: %w", c.retryStream(), err)
	}
	// Every partition's consumer exists from the start, so no event falls
	// between the stream and its consumer.
	for k := range c.Partitions {
		if _, err := ensurePartition(ctx, s.js, c, k); err != nil {
			return err
		}
	}
	return nil
}

// put creates or updates the event stream with epoch recorded.
func (s *streams) put(ctx context.Context, epoch string) error {
	c := s.cfg
	var meta map[string]string
	if epoch != "" {
		meta = map[string]string{metaEpoch: epoch}
	}
	if _, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
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
		Metadata:     meta,
		SubjectTransform: func() *jetstream.SubjectTransformConfig {
			if c.Partitions > 0 {
				return partitionTransform(c.Partitions)
			}
			return nil
		}(),
	}); err != nil {
		return fmt.Errorf("stream %s: %w", c.Stream, err)
	}
	return nil
}

// epoch is the registry epoch recorded on the event stream ("" if none).
func (s *streams) epoch(ctx context.Context) (string, error) {
	st, err := s.js.Stream(ctx, s.cfg.Stream)
	if err != nil {
		return "", err
	}
	return st.CachedInfo().Config.Metadata[metaEpoch], nil
}
