package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// backlog is the outcome of delivering a pre-loaded backlog.
type backlog struct {
	Seconds float64
	Want    int64 // unique (webhook, event) deliveries expected
	Sink    sinkStats
	Usage   map[string]usage
	Ceiling float64 // raw JetStream fetch+ack of the same events, events/s
}

// prepared is a backlog waiting in the stream.
type prepared struct {
	pub      pubResult
	pubUsage map[string]usage // nats and the publishing client
	// ceiling is raw JetStream fetch+ack of the same events, measured
	// right before the drain, so the drain's ratio to it holds however
	// the machine's load drifts during the run.
	ceiling      float64
	ceilingUsage map[string]usage
}

// prepareBacklog waits until webhookd is ready to consume for the
// webhooks (their consumers, or the partitions'), stops webhookd, publishes n events round-robin
// over subjects while nothing consumes them, and measures the ceiling on
// them. A webhook gets only events stored after its creation, so a
// backlog needs the webhooks first and webhookd away while it builds up:
// the situation after an outage, or a new replica set starting on a full
// stream.
func (b *bench) prepareBacklog(ctx context.Context, e *env, ids []string, subjects []string, n int) (prepared, error) {
	var p prepared
	if err := e.waitConsumers(ctx, ids, 2*time.Minute); err != nil {
		return p, err
	}
	e.stopWebhookd()
	pub, err := newPublisher(e.nc, b.cfg.eventBytes)
	if err != nil {
		return p, err
	}
	m := startMeter(map[string]int{"nats": e.natsP.Pid(), "client": selfPid()}, "")
	p.pub, err = pub.publish(ctx, subjects, n, 0)
	p.pubUsage = m.stop()
	if err != nil {
		return p, err
	}
	if p.pub.Failed > 0 {
		b.logf("%s: %d of %d publishes failed", e.name, p.pub.Failed, p.pub.Sent)
	}
	p.ceiling, p.ceilingUsage, err = b.ceiling(ctx, e, subjects, p.pub.Acked())
	return p, err
}

// drainBacklog starts webhookd and measures how long it takes until the
// consumers of ids have delivered and acknowledged everything, from the
// first delivery on (see drainWatch). want is the number of unique (webhook, event)
// deliveries the sinks must then report together.
func (b *bench) drainBacklog(ctx context.Context, e *env, ids []string, sinks []*sinkProc, want int64, timeout time.Duration) (backlog, error) {
	for _, s := range sinks {
		if err := s.reset(ctx); err != nil {
			return backlog{}, err
		}
	}
	before := e.delivered(ctx, ids)
	if err := e.startWebhookd(ctx); err != nil {
		return backlog{}, err
	}
	// The clock starts at the first delivered message, so webhookd's
	// start-up (a registry read, consumer checks, partition claims) is not
	// counted.
	var t0 time.Time
	err := waitFor(ctx, e.wd, 30*time.Second, "first delivery", func() bool {
		if e.delivered(ctx, ids) > before {
			t0 = time.Now()
			return true
		}
		return false
	})
	if err != nil {
		return backlog{}, err
	}
	m := startMeter(e.pids(sinks...), "")
	waitProfile := e.startProfile(ctx, b.profilePath(e.name), b.cfg.profileFor)
	defer waitProfile()
	deadline := t0.Add(timeout)
	watch := e.watchDrain(ids)
	for {
		ok, left := watch.done(ctx)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			m.stop()
			return backlog{}, fmt.Errorf("backlog not delivered after %s (%s)", timeout, left)
		}
		if e.wd.Exited() {
			m.stop()
			return backlog{}, fmt.Errorf("webhookd exited; see %s", e.wd.log)
		}
		if !sleepCtx(ctx, 25*time.Millisecond) {
			m.stop()
			return backlog{}, ctx.Err()
		}
	}
	out := backlog{Seconds: time.Since(t0).Seconds(), Want: want, Usage: m.stop()}
	st, err := sumStats(ctx, sinks, want)
	out.Sink = st
	return out, err
}

// sumStats adds up the sinks' counters, waiting briefly for the last
// requests' bookkeeping when fewer than want unique events are counted.
func sumStats(ctx context.Context, sinks []*sinkProc, want int64) (sinkStats, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var sum sinkStats
		var errs []error
		for _, s := range sinks {
			st, err := s.stats(ctx)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			sum.Requests += st.Requests
			sum.Batches += st.Batches
			sum.Events += st.Events
			sum.UniqueEvents += st.UniqueEvents
			sum.Duplicates += st.Duplicates
			sum.BadSignatures += st.BadSignatures
			sum.Mismatches += st.Mismatches
			sum.Malformed += st.Malformed
			sum.Rejected += st.Rejected
			sum.PeakInFlight = max(sum.PeakInFlight, st.PeakInFlight)
			sum.MaxBatchEvents = max(sum.MaxBatchEvents, st.MaxBatchEvents)
			if st.Latency != nil && len(sinks) == 1 {
				sum.Latency = st.Latency
			}
			if sum.Webhooks == nil {
				sum.Webhooks = map[string]int64{}
			}
			for k, v := range st.Webhooks {
				sum.Webhooks[k] += v
			}
		}
		if len(errs) > 0 {
			return sum, errors.Join(errs...)
		}
		if sum.UniqueEvents >= want || time.Now().After(deadline) {
			return sum, nil
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return sum, ctx.Err()
		}
	}
}

// ceiling measures raw JetStream on the same server and the same events:
// one pull consumer configured like a webhook's (explicit acks, the same
// MaxAckPending and batch limit), fetching 1,000 at a time and acking
// each message, with no HTTP, no Redis and no signing in between.
func (b *bench) ceiling(ctx context.Context, e *env, subjects []string, n int) (float64, map[string]usage, error) {
	cons, err := e.js.CreateOrUpdateConsumer(ctx, streamName, jetstream.ConsumerConfig{
		Durable:         "bench_ceiling",
		FilterSubjects:  e.storedSubjects(subjects),
		DeliverPolicy:   jetstream.DeliverAllPolicy,
		AckPolicy:       jetstream.AckExplicitPolicy,
		AckWait:         30 * time.Second,
		MaxAckPending:   30_000,
		MaxRequestBatch: 1000,
	})
	if err != nil {
		return 0, nil, fmt.Errorf("ceiling consumer: %w", err)
	}
	defer func() { _ = e.js.DeleteConsumer(context.WithoutCancel(ctx), streamName, "bench_ceiling") }()
	pids := e.pids()
	delete(pids, "webhookd")
	delete(pids, "redis")
	delete(pids, "bench")
	pids["client"] = selfPid()
	m := startMeter(pids, "")
	start := time.Now()
	got, lastProgress := 0, time.Now()
	for got < n {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			m.stop()
			return 0, nil, fmt.Errorf("ceiling fetch: %w", err)
		}
		for msg := range batch.Messages() {
			_ = msg.Ack()
			got++
			lastProgress = time.Now()
		}
		if time.Since(lastProgress) > 10*time.Second {
			m.stop()
			return 0, nil, fmt.Errorf("ceiling: stalled at %d of %d events", got, n)
		}
	}
	// Count the acks as done once the server has them all.
	for {
		ci, err := cons.Info(ctx)
		if err == nil && ci.NumAckPending == 0 {
			break
		}
		if !sleepCtx(ctx, 5*time.Millisecond) {
			m.stop()
			return 0, nil, ctx.Err()
		}
	}
	secs := time.Since(start).Seconds()
	return float64(n) / secs, m.stop(), nil
}

// sleepCtx sleeps d unless ctx ends first; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
