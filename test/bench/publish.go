package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/cmd/webhookd/eventgen"
)

// pubResult is what one publish run achieved.
type pubResult struct {
	Sent     int     `json:"sent"`
	Failed   int64   `json:"failed"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"events_per_s"`
	Subjects int     `json:"subjects"`
}

// Acked is how many events the stream confirmed.
func (r pubResult) Acked() int { return r.Sent - int(r.Failed) }

// publisher publishes the events of `webhookd publish --generate` (one
// generator, eventgen) with PublishAsync, as a producer should
// (tech-notes §1.4), each with Nats-Msg-Id = data.id so JetStream drops
// producer retries, as the README recommends.
type publisher struct {
	js  jetstream.JetStream
	gen *eventgen.Generator
	bad atomic.Int64
}

func newPublisher(nc *nats.Conn, eventBytes int) (*publisher, error) {
	p := &publisher{gen: eventgen.New(eventBytes)}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(30*time.Second),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { p.bad.Add(1) }))
	if err != nil {
		return nil, err
	}
	p.js = js
	return p, nil
}

// publish sends n events round-robin over subjects, at rate events/s (0:
// as fast as acknowledgements allow), and waits for every
// acknowledgement. published_ns is the moment each event is handed to the
// client.
func (p *publisher) publish(ctx context.Context, subjects []string, n int, rate float64) (pubResult, error) {
	p.bad.Store(0)
	start := time.Now()
	sent := 0
	for sent < n {
		if err := ctx.Err(); err != nil {
			return pubResult{}, err
		}
		due := n
		if rate > 0 {
			due = min(n, int(time.Since(start).Seconds()*rate)+1)
			if due <= sent {
				time.Sleep(time.Duration(float64(sent+1-due)/rate*1e9) + 200*time.Microsecond)
				continue
			}
		}
		for ; sent < due; sent++ {
			ev := p.gen.Append(make([]byte, 0, 1280), time.Now())
			m := &nats.Msg{
				Subject: subjects[sent%len(subjects)],
				Data:    ev.JSON,
				Header:  nats.Header{jetstream.MsgIDHeader: []string{ev.ID}},
			}
			// A server busy writing its store can hold acks for a while;
			// waiting is what a producer does (the default gives up
			// after 200 ms).
			if _, err := p.js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
				return pubResult{}, fmt.Errorf("publish: %w", err)
			}
		}
	}
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return pubResult{}, ctx.Err()
	case <-time.After(2 * time.Minute):
		return pubResult{}, fmt.Errorf("publish: %d acknowledgements still pending after 2m", p.js.PublishAsyncPending())
	}
	secs := time.Since(start).Seconds()
	return pubResult{Sent: n, Failed: p.bad.Load(), Seconds: secs, PerSec: float64(n) / secs, Subjects: len(subjects)}, nil
}
