package activity

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// ackTimeout bounds the wait for one publish's acknowledgement, and the
// one synchronous retry after a failed publish.
const ackTimeout = 10 * time.Second

// Stats are the writer's counters, read by the metrics.
type Stats struct {
	Written atomic.Int64 // attempts stored (acknowledged by the stream)
	Dropped atomic.Int64 // attempts dropped: buffer full, or recorded after shutdown
	Failed  atomic.Int64 // attempts whose publish failed twice
}

// Writer is the Recorder of the attempt log. Record puts the attempt in a
// bounded buffer and returns at once; Run publishes from the buffer, with
// at most Config.Window publishes awaiting acknowledgement. A full buffer
// drops the attempt: delivery is never slowed for the log's sake. Drops
// and failures are counted in Stats and logged at most once a minute.
type Writer struct {
	cfg Config
	js  jetstream.JetStream
	log zerolog.Logger
	// failLog says at most once a minute that attempts were lost;
	// Stats.Failed counts every one.
	failLog zerolog.Logger
	ch      chan queued
	// closing guards closed: Record holds it shared from its check of
	// closed to its send, Run exclusively to set closed, so once Run
	// drains, no Record can still add to ch (its attempt would be
	// neither written nor counted).
	closing sync.RWMutex
	closed  bool
	stats   Stats
}

// queued is an attempt waiting for the writer, with when it was recorded.
type queued struct {
	a  Attempt
	at time.Time
}

// pending is a publish awaiting its acknowledgement.
type pending struct {
	f    jetstream.PubAckFuture
	at   time.Time // recorded
	sent time.Time // published
}

// NewWriter returns the writer of the log; the stream must exist
// (Ensure).
func NewWriter(cfg Config, js jetstream.JetStream, log zerolog.Logger) *Writer {
	cfg = cfg.withDefaults()
	return &Writer{cfg: cfg, js: js, log: log, ch: make(chan queued, cfg.Buffer),
		failLog: log.Sample(&zerolog.BurstSampler{Burst: 1, Period: time.Minute})}
}

// Stats returns the writer's counters.
func (w *Writer) Stats() *Stats { return &w.stats }

// Buffered is how many attempts wait for the writer now.
func (w *Writer) Buffered() int { return len(w.ch) }

// Record implements Recorder: it never blocks (beyond Run's moment of
// setting closed at shutdown).
func (w *Writer) Record(a Attempt) {
	w.closing.RLock()
	defer w.closing.RUnlock()
	if w.closed {
		w.stats.Dropped.Add(1)
		return
	}
	select {
	case w.ch <- queued{a: a, at: time.Now()}:
	default:
		w.stats.Dropped.Add(1)
	}
}

// Run publishes recorded attempts until ctx is done, then publishes what
// is still buffered, waits for the last acknowledgements (each at most
// ackTimeout) and returns nil. Cancel ctx after the dispatcher has
// stopped, so the attempts of its last deliveries are kept.
func (w *Writer) Run(ctx context.Context) error {
	acks := make(chan pending, w.cfg.Window)
	settled := make(chan struct{})
	go func() { defer close(settled); w.settle(acks) }()
	defer func() { close(acks); <-settled }()

	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	var dropped int64
	for {
		select {
		case q := <-w.ch:
			w.publish(q, acks)
		case <-tick.C:
			dropped = w.reportDrops(dropped)
		case <-ctx.Done():
			w.closing.Lock()
			w.closed = true
			w.closing.Unlock()
			for {
				select {
				case q := <-w.ch:
					w.publish(q, acks)
				default:
					w.reportDrops(dropped)
					return nil
				}
			}
		}
	}
}

// reportDrops logs the attempts dropped since the last report (seen).
func (w *Writer) reportDrops(seen int64) int64 {
	now := w.stats.Dropped.Load()
	if now > seen {
		w.log.Warn().Int64("dropped", now-seen).Int("buffer", w.cfg.Buffer).
			Msg("attempt log: attempts dropped, the writer could not keep up (buffer full or NATS slow); deliveries unaffected")
	}
	return now
}

// publish sends one attempt; acks blocks once Window publishes await
// their acknowledgement.
func (w *Writer) publish(q queued, acks chan<- pending) {
	data, err := encode(&q.a)
	if err != nil { // only strings and numbers: cannot happen
		w.failed(err)
		return
	}
	msg := &nats.Msg{Subject: Subject(q.a.AccountID, q.a.WebhookID), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, q.a.ID)
	f, err := w.js.PublishMsgAsync(msg)
	if err != nil {
		w.retry(msg, q.at, err)
		return
	}
	acks <- pending{f: f, at: q.at, sent: time.Now()}
}

// settle waits for each publish's acknowledgement, in order, each at
// most ackTimeout from when it was published (so an outage costs one
// wait, not one per publish in the window).
func (w *Writer) settle(acks <-chan pending) {
	for p := range acks {
		t := time.NewTimer(time.Until(p.sent.Add(ackTimeout)))
		select {
		case <-p.f.Ok():
			w.written(p.at)
		case err := <-p.f.Err():
			w.retry(p.f.Msg(), p.at, err)
		case <-t.C:
			w.retry(p.f.Msg(), p.at, context.DeadlineExceeded)
		}
		t.Stop()
	}
}

// retry publishes msg once more, synchronously, if the connection is up
// (during an outage every publish would wait its full timeout); its
// Nats-Msg-Id makes a publish that was stored after all count once.
func (w *Writer) retry(msg *nats.Msg, at time.Time, cause error) {
	if !w.js.Conn().IsConnected() {
		w.failed(cause)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	if _, err := w.js.PublishMsg(ctx, msg); err != nil {
		w.failed(errors.Join(cause, err))
		return
	}
	w.written(at)
}

func (w *Writer) written(at time.Time) {
	w.stats.Written.Add(1)
	if w.cfg.ObserveLag != nil {
		w.cfg.ObserveLag(time.Since(at))
	}
}

func (w *Writer) failed(err error) {
	w.stats.Failed.Add(1)
	w.failLog.Error().Err(err).Int64("failed", w.stats.Failed.Load()).
		Msg("attempt log: attempt not stored (publish failed twice); deliveries unaffected")
}
