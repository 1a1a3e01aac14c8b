package dispatcher

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fan is one partition event on its way to several webhooks. It is
// acknowledged on the stream once every webhook's share is settled:
// delivered, set aside, or moved to the webhook's retry subject. If a
// share cannot be settled (its retry publish failed), the event is handed
// back whole and every webhook meets it again: a duplicate for those that
// had it, never a loss.
type fan struct {
	msg     jetstream.Msg
	subject string                 // as published (the partition prefix removed)
	md      *jetstream.MsgMetadata // msg's, parsed once for every share
	release func()                 // gives the event's bytes back to the budget

	mu     sync.Mutex
	left   int  // shares not settled yet
	failed bool // some share could not be settled
}

// settle marks one share settled (ok) or not.
func (f *fan) settle(ok bool) {
	f.mu.Lock()
	f.left--
	f.failed = f.failed || !ok
	done, failed := f.left == 0, f.failed
	f.mu.Unlock()
	if !done {
		return
	}
	if failed {
		_ = f.msg.NakWithDelay(handBackDelay(f.msg))
	} else {
		_ = f.msg.Ack()
	}
	f.release()
}

// handBackDelay is how long an event handed back whole waits: a second,
// doubling with each delivery up to 64 s, so that a cause that lasts
// (Redis away, a retry stream refusing copies) does not cycle the whole
// backlog every second.
func handBackDelay(m jetstream.Msg) time.Duration {
	n := uint64(1)
	if md, err := m.Metadata(); err == nil {
		n = max(n, md.NumDelivered)
	}
	return time.Second << min(n-1, 6)
}

// share is one webhook's part of a fan. It is a jetstream.Msg, so the
// courier delivers it like any message: Ack and Term settle it; Nak and
// NakWithDelay (a failed or unsent request, a webhook backing off) move
// it to the webhook's retry subject, whose consumer redelivers it with
// the webhook's backoff.
type share struct {
	f       *fan
	webhook string
	retry   *retrier
	queued  time.Time // when it joined its webhook's queue

	// tried: a request carried this share, so a copy moved to the retry
	// subject counts that try (retry.go, headerTries).
	tried atomic.Bool

	mu   sync.Mutex
	done bool
}

var _ jetstream.Msg = (*share)(nil)

// markTried notes that a request carried the share (record.go).
func (s *share) markTried() { s.tried.Store(true) }

// once reports whether this is the share's first settlement.
func (s *share) once() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return false
	}
	s.done = true
	return true
}

func (s *share) Metadata() (*jetstream.MsgMetadata, error) {
	if s.f.md != nil {
		return s.f.md, nil
	}
	return s.f.msg.Metadata()
}
func (s *share) Data() []byte         { return s.f.msg.Data() }
func (s *share) Headers() nats.Header { return s.f.msg.Headers() }
func (s *share) Subject() string      { return s.f.subject }
func (s *share) Reply() string        { return "" }
func (s *share) InProgress() error    { return s.f.msg.InProgress() }

// Ack settles the share: the webhook has the event.
func (s *share) Ack() error {
	if s.once() {
		s.f.settle(true)
	}
	return nil
}

// DoubleAck is Ack; the partition event's own ack is not waited for.
func (s *share) DoubleAck(context.Context) error { return s.Ack() }

// Term settles the share: the event was set aside for this webhook.
func (s *share) Term() error { return s.Ack() }

// TermWithReason is Term.
func (s *share) TermWithReason(string) error { return s.Ack() }

// Nak moves the share to the webhook's retry subject. (Several at once
// go together, in one bundle: nakShares.)
func (s *share) Nak() error {
	if s.once() {
		s.retry.divert([]*share{s})
	}
	return nil
}

// nakShares moves the shares among msgs to their retry subjects together,
// in bundles, and returns the other messages.
func nakShares(msgs []jetstream.Msg) []jetstream.Msg {
	var ss []*share
	var rest []jetstream.Msg
	for _, m := range msgs {
		if s, ok := m.(*share); ok {
			if s.once() {
				ss = append(ss, s)
			}
			continue
		}
		rest = append(rest, m)
	}
	if len(ss) > 0 {
		ss[0].retry.divert(ss)
	}
	return rest
}

// NakWithDelay is Nak: the retry subject's consumer applies the
// webhook's backoff.
func (s *share) NakWithDelay(time.Duration) error { return s.Nak() }
