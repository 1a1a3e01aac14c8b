// Package publish is the publisher behind `webhookd publish`: it reads
// events (one JSON event in Get Event shape per line) or generates them,
// publishes them to JetStream on one subject with PublishAsync, and waits
// for every acknowledgement.
package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of Config.
const (
	DefaultMaxPending = 4096
	DefaultAckTimeout = 30 * time.Second
)

// Config is one publish run.
type Config struct {
	Subject    string        // <topic> or <topic>.<account>. Required
	Events     Source        // what to publish. Required
	Rate       float64       // events per second; 0: as fast as acknowledgements allow
	MaxPending int           // unacknowledged publishes in flight; 0: DefaultMaxPending
	AckTimeout time.Duration // how long one publish may wait for its acknowledgement; 0: DefaultAckTimeout
}

// Source returns the next event to publish and its Nats-Msg-Id (empty:
// none), or io.EOF after the last.
type Source func() (data []byte, msgID string, err error)

// Report is what a run achieved.
type Report struct {
	Subject                         string
	Sent, Acked, Failed, Duplicates int64
	Elapsed                         time.Duration
}

// String is the one-line report `webhookd publish` prints.
func (r Report) String() string {
	rate := float64(r.Acked) / max(r.Elapsed.Seconds(), 1e-9)
	return fmt.Sprintf("published %d of %d events to %s in %s (%.0f events/s), %d failed, %d duplicates dropped by JetStream",
		r.Acked, r.Sent, r.Subject, r.Elapsed.Round(time.Millisecond), rate, r.Failed, r.Duplicates)
}

// stats counts publish outcomes; the ack callbacks run on the NATS
// client's goroutine, hence atomics.
type stats struct {
	sent, acked, duplicates, failed atomic.Int64
	firstErr                        atomic.Pointer[error]
}

func (s *stats) fail(err error) {
	s.failed.Add(1)
	s.firstErr.CompareAndSwap(nil, &err)
}

// Run publishes cfg.Events on nc until the source ends or ctx is done,
// then waits for the outstanding acknowledgements. The report is valid
// whatever the error: a read error, failed publishes (the first one
// explained) or acknowledgements cut short by ctx.
func Run(ctx context.Context, nc *nats.Conn, cfg Config) (Report, error) {
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	rep := Report{Subject: cfg.Subject}
	var st stats
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, _ *nats.Msg, ack *jetstream.PubAck) {
			st.acked.Add(1)
			if ack.Duplicate {
				st.duplicates.Add(1)
			}
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			st.fail(err)
		}),
	)
	if err != nil {
		return rep, fmt.Errorf("jetstream: %w", err)
	}

	start := time.Now()
	readErr := publishAll(ctx, js, cfg, &st, pacer{rate: cfg.Rate, start: start})
	// Wait for every acknowledgement (or its ack timeout).
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
	}
	rep.Elapsed = time.Since(start)
	rep.Sent, rep.Acked, rep.Failed, rep.Duplicates = st.sent.Load(), st.acked.Load(), st.failed.Load(), st.duplicates.Load()
	switch {
	case readErr != nil:
		return rep, readErr
	case rep.Failed > 0:
		return rep, fmt.Errorf("%d of %d publishes failed, first: %w", rep.Failed, rep.Sent, explain(*st.firstErr.Load(), cfg.Subject))
	case rep.Acked < rep.Sent:
		return rep, fmt.Errorf("interrupted: %d of %d publishes unacknowledged", rep.Sent-rep.Acked, rep.Sent)
	}
	return rep, nil
}

// publishAll publishes every event of cfg.Events, paced, until the source
// ends (nil), fails (its error) or ctx is done (nil: Run reports the
// unacknowledged rest).
func publishAll(ctx context.Context, js jetstream.JetStream, cfg Config, st *stats, pace pacer) error {
	for n := 0; ctx.Err() == nil; n++ {
		data, msgID, err := cfg.Events()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := pace.wait(ctx, n); err != nil {
			return nil
		}
		var opts []jetstream.PublishOpt
		if msgID != "" {
			opts = append(opts, jetstream.WithMsgID(msgID))
		}
		st.sent.Add(1)
		if err := publishAsync(ctx, js, cfg.Subject, data, opts); err != nil {
			st.fail(err)
		}
	}
	return nil
}

// publishAsync publishes one message, waiting while MaxPending publishes
// await their acknowledgement: a busy server slows the publisher down
// instead of failing the message.
func publishAsync(ctx context.Context, js jetstream.JetStream, subject string, data []byte, opts []jetstream.PublishOpt) error {
	for {
		_, err := js.PublishAsync(subject, data, opts...)
		// PublishAsync already waited its stall time (200ms) for room.
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) || ctx.Err() != nil {
			return err
		}
	}
}

// explain adds the likely cause to "no stream" errors.
func explain(err error, subject string) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("no JetStream stream captures %s (is webhookd serve running, and do its --subjects cover the topic?): %w", subject, err)
	}
	return err
}

// pacer spreads publishes evenly at rate per second (0: no pacing). It
// schedules event n at start + n/rate, so a slow moment is caught up
// rather than lost.
type pacer struct {
	rate  float64
	start time.Time
}

func (p pacer) wait(ctx context.Context, n int) error {
	if p.rate <= 0 {
		return ctx.Err()
	}
	d := time.Until(p.start.Add(time.Duration(float64(n) / p.rate * float64(time.Second))))
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
