package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Partitioned consumption (Config.Partitions > 0; README, Operations,
// "Scaling to 100,000 webhooks"). The event stream maps every
// <prefix>.<topic>.<account> subject to wp.<k>.<prefix>.<topic>.<account>,
// k = FNV-1a(account) mod Partitions, with a stream subject transform:
// producers publish as before. One durable consumer per partition reads
// it, and each partition is consumed by one replica at a time (owner.go:
// Redis leases). A partition runner fans each event out to the webhooks
// of its account subscribed to its topic (index.go), into per-webhook
// queues (hook.go) that batch and deliver with the same courier as
// per-webhook consumption; the event is acknowledged once every target
// has settled it (fan.go). A webhook that fails, or falls behind, has its
// events moved to a retry subject of its own (retry.go), so its backlog
// never holds back its partition. The server's cost per event is then
// one transform and one partition consumer, whatever the number of
// webhooks, and an idle webhook costs a few hundred bytes of index.

// partitionPrefix is the first token of a partitioned subject.
const partitionPrefix = "wp"

// partitionTransform is the event stream's subject transform for n
// partitions: every three-token subject is partitioned by its third token
// (the account); bare topics (two tokens) pass unchanged and belong to
// the default account's partition.
func partitionTransform(n int) *jetstream.SubjectTransformConfig {
	return &jetstream.SubjectTransformConfig{
		Source:      "*.*.*",
		Destination: fmt.Sprintf("%s.{{partition(%d,3)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}", partitionPrefix, n),
	}
}

// partitionOf is the partition nats-server's partition(n, ...) function
// gives account: FNV-1a 32 of the token, mod n.
func partitionOf(account string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(account))
	return int(h.Sum32() % uint32(n))
}

// partitionConsumer is the durable consumer of partition k.
func partitionConsumer(k int) string { return "part_" + strconv.Itoa(k) }

// partitionFilters are the subjects partition k's consumer reads: its
// partitioned subjects, plus the bare topics when it is the default
// account's partition.
func (c Config) partitionFilters(k int) []string {
	fs := []string{partitionPrefix + "." + strconv.Itoa(k) + ".>"}
	if k == partitionOf(c.DefaultAccount, c.Partitions) {
		fs = append(fs, "*.*")
	}
	return fs
}

// partitionConsumerConfig is the durable consumer of partition k. It
// reads from the start of the stream: partition consumers are made with
// the stream, at start-up, and live as long as it, so no event falls
// between the two; a webhook's "only events after its creation" is a
// filter on the event's time (see route). Upgrade note: on a stream that
// had per-webhook consumers, its bare-topic history is read once more.
func (c Config) partitionConsumerConfig(k int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        partitionConsumer(k),
		Description:    "webhookd partition " + strconv.Itoa(k),
		FilterSubjects: c.partitionFilters(k),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.ackWait(),
		// Events wait unacknowledged while their webhooks' requests run;
		// the byte budget, not this, bounds what a replica holds.
		MaxAckPending:   1_000_000,
		MaxDeliver:      -1,
		MaxRequestBatch: 1000,
	}
}

// unpartition returns the subject an event was published on.
func unpartition(subject string) string {
	rest, ok := strings.CutPrefix(subject, partitionPrefix+".")
	if !ok {
		return subject
	}
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		return rest[i+1:]
	}
	return subject
}

// healStart is how far back a partition consumer found missing after
// start-up is made to begin: the events it had not acknowledged come
// again (duplicates), without resending the stream's whole history.
const healStart = 5 * time.Minute

// ensurePartition returns partition k's consumer, creating it if it is
// missing: from the start of the stream when the streams are made
// (fresh), else from healStart ago, logged.
func ensurePartition(ctx context.Context, js jetstream.JetStream, cfg Config, k int, fresh bool, log zerolog.Logger) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, cfg.Stream, partitionConsumer(k))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cc := cfg.partitionConsumerConfig(k)
		if !fresh {
			start := time.Now().Add(-healStart)
			cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
			log.Error().Int("partition", k).Dur("duration_ms", healStart).
				Msg("partition consumer missing on the NATS server; recreated, re-reading its recent events")
		}
		c, err = js.CreateConsumer(ctx, cfg.Stream, cc)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			c, err = js.Consumer(ctx, cfg.Stream, partitionConsumer(k))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("partition %d consumer: %w", k, err)
	}
	return c, nil
}
