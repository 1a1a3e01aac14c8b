package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The bench watches JetStream to know when webhookd is ready and when a
// backlog is delivered. What it watches depends on the consumption model
// (--partitions, passed to every webhookd serve):
//
//   - per-webhook consumers (--partitions 0): consumer wh_<id> on the
//     event stream, one per enabled webhook;
//   - partitions (the default, 16): durable consumers part_<k> on the
//     event stream, made with the stream at start-up, and a consumer
//     rt_<id> on the retry stream for each webhook whose events were
//     moved to its retry subjects (bundles of n events on
//     webhookd.retry.<id>.<n>).

// retryStream and retrySubjectPrefix are dispatcher's retry stream
// (Config.Stream + "_RETRY") and its subjects.
const (
	retryStream        = streamName + "_RETRY"
	retrySubjectPrefix = "webhookd.retry."
)

func partConsumer(k int) string { return "part_" + strconv.Itoa(k) }

// partitionOf is nats-server's partition(n, account): FNV-1a 32 of the
// token, mod n (dispatcher's partitionOf, which is not exported).
func partitionOf(account string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(account))
	return int(h.Sum32() % uint32(n))
}

// partitioned reports whether webhookd consumes by partition.
func (e *env) partitioned() bool { return e.partitions > 0 }

// storedSubjects are the subjects the event stream stores events
// published on subjects under: partitioned streams prefix them with
// wp.<k> (a subject transform).
func (e *env) storedSubjects(subjects []string) []string {
	if !e.partitioned() {
		return subjects
	}
	out := make([]string, len(subjects))
	for i, s := range subjects {
		out[i] = "wp.*." + s
	}
	return out
}

// waitConsumers waits until webhookd is ready to consume for ids: every
// webhook's consumer exists (per-webhook), or every partition consumer
// does (partitions: the webhooks are found in the index as events come).
func (e *env) waitConsumers(ctx context.Context, ids []string, timeout time.Duration) error {
	names := make([]string, 0, max(len(ids), e.partitions))
	what := fmt.Sprintf("consumers of %d webhooks", len(ids))
	if e.partitioned() {
		for k := range e.partitions {
			names = append(names, partConsumer(k))
		}
		what = fmt.Sprintf("%d partition consumers", e.partitions)
	} else {
		for _, id := range ids {
			names = append(names, "wh_"+id)
		}
	}
	i := 0
	return waitFor(ctx, e.wd, timeout, what, func() bool {
		for ; i < len(names); i++ {
			if _, err := e.js.Consumer(ctx, streamName, names[i]); err != nil {
				return false
			}
		}
		return true
	})
}

// waitConsumerSet waits until the stream's webhook consumers (wh_*) are
// exactly those of ids (per-webhook consumption: a disabled webhook's
// consumer goes); other consumers (strays) are not webhooks'. Under partitions a webhook has no consumer of its own; webhookd
// is restarted after every change the callers make, so the partition
// consumers are all there is to wait for.
func (e *env) waitConsumerSet(ctx context.Context, ids []string, timeout time.Duration) error {
	if e.partitioned() {
		return e.waitConsumers(ctx, ids, timeout)
	}
	want := map[string]bool{}
	for _, id := range ids {
		want["wh_"+id] = true
	}
	return waitFor(ctx, e.wd, timeout, fmt.Sprintf("exactly the consumers of %d webhooks", len(ids)), func() bool {
		st, err := e.js.Stream(ctx, streamName)
		if err != nil {
			return false
		}
		n := 0
		names := st.ConsumerNames(ctx)
		for name := range names.Name() {
			if !strings.HasPrefix(name, "wh_") {
				continue
			}
			if !want[name] {
				return false
			}
			n++
		}
		return names.Err() == nil && n == len(want)
	})
}

// delivered is how many messages the consumers feeding ids have handed
// to webhookd so far (durable: it carries over restarts, so callers
// compare with an earlier value).
func (e *env) delivered(ctx context.Context, ids []string) uint64 {
	if !e.partitioned() {
		if len(ids) == 0 {
			return 0
		}
		c, err := e.js.Consumer(ctx, streamName, "wh_"+ids[0])
		if err != nil {
			return 0
		}
		return c.CachedInfo().Delivered.Consumer
	}
	var n uint64
	for k := range e.partitions {
		if c, err := e.js.Consumer(ctx, streamName, partConsumer(k)); err == nil {
			n += c.CachedInfo().Delivered.Consumer
		}
	}
	return n
}

// drainWatch tells when a pre-published backlog for ids is delivered.
// Nothing is published meanwhile, so a consumer found drained stays
// drained: each is checked until it is, then the next, which costs a few
// JetStream API calls per poll however many webhooks there are.
type drainWatch struct {
	e     *env
	names []string        // consumers on the event stream, in check order
	ids   map[string]bool // webhooks whose retry subjects must be empty
	i     int
}

func (e *env) watchDrain(ids []string) *drainWatch {
	w := &drainWatch{e: e, ids: map[string]bool{}}
	for _, id := range ids {
		w.ids[id] = true
	}
	if e.partitioned() {
		for k := range e.partitions {
			w.names = append(w.names, partConsumer(k))
		}
	} else {
		for _, id := range ids {
			w.names = append(w.names, "wh_"+id)
		}
	}
	return w
}

// done reports whether everything is delivered and acknowledged; when
// not, left says what is still waiting. Per-webhook: each webhook's
// consumer has nothing pending, unacknowledged or being redelivered.
// Partitions: every partition consumer has nothing pending or
// unacknowledged, and no webhook of ids has an event left on its retry
// subject (the retry stream is a work queue: an acknowledged event is
// gone from it, whether or not its consumer still exists).
func (w *drainWatch) done(ctx context.Context) (ok bool, left string) {
	for ; w.i < len(w.names); w.i++ {
		c, err := w.e.js.Consumer(ctx, streamName, w.names[w.i])
		if err != nil {
			return false, fmt.Sprintf("consumer %s: %v", w.names[w.i], err)
		}
		ci := c.CachedInfo()
		redelivered := !w.e.partitioned() && ci.NumRedelivered > 0
		if ci.NumPending > 0 || ci.NumAckPending > 0 || redelivered {
			return false, fmt.Sprintf("consumer %s (%d of %d): %d pending, %d unacknowledged",
				w.names[w.i], w.i+1, len(w.names), ci.NumPending, ci.NumAckPending)
		}
	}
	if !w.e.partitioned() {
		return true, ""
	}
	waiting, err := w.e.retryWaiting(ctx)
	if err != nil {
		return false, err.Error()
	}
	for id, n := range waiting {
		if w.ids[id] && n > 0 {
			return false, fmt.Sprintf("webhook %s: %d events on its retry subject", id, n)
		}
	}
	return true, ""
}

// retryWaiting returns the number of events waiting on each retry
// subject that has any, by webhook id.
func (e *env) retryWaiting(ctx context.Context) (map[string]uint64, error) {
	st, err := e.js.Stream(ctx, retryStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("retry stream: %w", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(retrySubjectPrefix+">"))
	if err != nil {
		return nil, fmt.Errorf("retry stream: %w", err)
	}
	out := map[string]uint64{}
	for subj, n := range info.State.Subjects {
		// webhookd.retry.<id> holds single copies, webhookd.retry.<id>.<k>
		// bundles of k events.
		id, k, bundled := strings.Cut(strings.TrimPrefix(subj, retrySubjectPrefix), ".")
		size, err := strconv.ParseUint(k, 10, 64)
		if !bundled || err != nil {
			size = 1
		}
		out[id] += n * size
	}
	return out, nil
}

// webhookBacklog returns what waits for webhook id alone: its consumer's
// pending and unacknowledged events (per-webhook), or those of its retry
// consumer (partitions; zero when it has none).
func (e *env) webhookBacklog(ctx context.Context, id string) (pending, unacked uint64, err error) {
	stream, name := streamName, "wh_"+id
	if e.partitioned() {
		stream, name = retryStream, "rt_"+id
	}
	c, err := e.js.Consumer(ctx, stream, name)
	if e.partitioned() && errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	ci := c.CachedInfo()
	return ci.NumPending, uint64(ci.NumAckPending), nil
}

// backlogConsumer names the consumer webhookBacklog reads, for notes.
func (e *env) backlogConsumer() string {
	if e.partitioned() {
		return "retry consumer"
	}
	return "consumer"
}
