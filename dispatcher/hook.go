package dispatcher

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"

	"github.com/webhookd/webhookd/subscriptions"
)

// hooks are this replica's per-webhook queues under partitioned
// consumption. A queue exists only while its webhook has events waiting
// or in flight here; an idle webhook costs nothing but its index entry.
type hooks struct {
	cfg     Config
	slots   slotStore
	courier *courier
	retry   *retrier
	idx     webhookLookup
	log     zerolog.Logger
	wg      sync.WaitGroup // pumps and their deliveries
	closing atomic.Bool    // shutting down: queued events are handed back, not sent

	mu sync.Mutex
	m  map[string]*hook
}

// webhookLookup finds a webhook by id (the index).
type webhookLookup interface {
	Get(id string) (*subscriptions.Webhook, bool)
}

// hook is one webhook's queue on this replica.
type hook struct {
	hs    *hooks
	id    string
	local *semaphore.Weighted // never ask Redis for an (N+1)th slot
	wake  chan struct{}       // a full batch is waiting

	mu      sync.Mutex
	q       []*share
	bytes   int
	first   time.Time // when the oldest queued share arrived
	running bool      // a pump is running
}

// push queues s for webhook id.
func (hs *hooks) push(id string, s *share) {
	hs.mu.Lock()
	h, ok := hs.m[id]
	if !ok {
		h = &hook{hs: hs, id: id, local: semaphore.NewWeighted(int64(hs.cfg.MaxInFlight)), wake: make(chan struct{}, 1)}
		hs.m[id] = h
	}
	hs.mu.Unlock()
	h.push(s)
}

func (h *hook) push(s *share) {
	s.queued = time.Now()
	h.mu.Lock()
	h.q = append(h.q, s)
	h.bytes += len(s.Data())
	if len(h.q) == 1 {
		h.first = time.Now()
	}
	full := len(h.q) >= h.hs.cfg.BatchMaxEvents || h.bytes >= h.hs.cfg.BatchMaxBytes
	start := !h.running
	h.running = true
	h.mu.Unlock()
	if start {
		h.hs.wg.Add(1)
		go h.pump()
	}
	if full {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// pump sends the queue's batches until it is empty.
func (h *hook) pump() {
	defer h.hs.wg.Done()
	for {
		batch := h.next()
		if batch == nil {
			return
		}
		h.send(batch)
	}
}

// next waits until a batch is full or its oldest event has lingered,
// and takes it; nil when the queue is empty (the pump ends, and the
// hook is forgotten).
func (h *hook) next() []*share {
	cfg := h.hs.cfg
	for {
		if old := h.overdue(); len(old) > 0 {
			h.divert(old) // a slow endpoint: its events leave the partition
			continue
		}
		h.mu.Lock()
		if len(h.q) == 0 {
			h.running = false
			h.mu.Unlock()
			h.hs.forget(h)
			return nil
		}
		wait := cfg.BatchLinger - time.Since(h.first)
		full := len(h.q) >= cfg.BatchMaxEvents || h.bytes >= cfg.BatchMaxBytes
		if full || wait <= 0 {
			n, size := 0, 0
			for n < len(h.q) && n < cfg.BatchMaxEvents && (n == 0 || size+len(h.q[n].Data()) <= cfg.BatchMaxBytes) {
				size += len(h.q[n].Data())
				n++
			}
			batch := h.q[:n:n]
			h.q = append([]*share(nil), h.q[n:]...)
			h.bytes -= size
			h.first = time.Now()
			h.mu.Unlock()
			return batch
		}
		h.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-h.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// overdue takes the queued shares that have waited longer than
// divertAfter: the endpoint is too slow for its traffic, and they must
// leave the partition (for the retry subject) well within AckWait.
func (h *hook) overdue() []*share {
	limit := time.Now().Add(-h.hs.divertAfter())
	h.mu.Lock()
	defer h.mu.Unlock()
	n, size := 0, 0
	for n < len(h.q) && h.q[n].queued.Before(limit) {
		size += len(h.q[n].Data())
		n++
	}
	if n == 0 {
		return nil
	}
	old := append([]*share(nil), h.q[:n]...)
	h.q = append(h.q[:0:0], h.q[n:]...)
	h.bytes -= size
	if len(h.q) > 0 {
		h.first = h.q[0].queued
	}
	return old
}

// forget drops an idle hook, unless events arrived meanwhile.
func (hs *hooks) forget(h *hook) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.running && hs.m[h.id] == h {
		delete(hs.m, h.id)
	}
}

// send delivers batch under a request slot, or moves it to the retry
// subject when the webhook is retrying, backing off, or has had no free
// slot for divertAfter (a slow endpoint must not hold its partition).
func (h *hook) send(batch []*share) {
	hs := h.hs
	if hs.closing.Load() {
		handBack(batch) // the next owner of the partition gets it
		return
	}
	w, ok := hs.idx.Get(h.id)
	if !ok || !w.Enabled {
		for _, s := range batch {
			_ = s.Ack() // deleted or disabled: its events are dropped
		}
		return
	}
	if w.State.Retrying {
		h.divert(batch)
		return
	}
	deadline := time.Now().Add(hs.divertAfter())
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := h.local.Acquire(ctx, 1); err != nil {
		h.divert(batch)
		return
	}
	holder := uuid.NewString()
	for {
		slot, err := hs.slots.AcquireSlot(ctx, h.id, holder, hs.cfg.MaxInFlight, hs.cfg.Lease)
		switch {
		case err != nil:
			h.local.Release(1)
			handBack(batch) // Redis away: the partition events come again
			return
		case slot.Gone:
			h.local.Release(1)
			h.gone(batch)
			return
		case slot.Acquired:
			// The one activation check of a batch: the slot script reads
			// the webhook's ActiveSince in Redis, which is never older than
			// the index's (a re-enable may not have reached the index yet).
			// Events stored before it are dropped: a re-enable delivers
			// only new events. (route's check on the index's ActiveSince
			// only spares queueing events that are obviously too old.)
			if batch = dropStaleBefore(slot.ActiveSince, batch); len(batch) == 0 {
				_ = hs.slots.ReleaseSlot(ctx, h.id, holder)
				h.local.Release(1)
				return
			}
			msgs := make([]jetstream.Msg, len(batch))
			for i, s := range batch {
				msgs[i] = s
			}
			hs.wg.Add(1)
			go func() {
				defer hs.wg.Done()
				defer h.local.Release(1)
				hs.courier.deliver(*w, holder, msgs)
			}()
			return
		case slot.RetryAfter > maxHold || time.Until(deadline) < slot.RetryAfter:
			h.local.Release(1)
			h.divert(batch) // backing off, or no slot soon enough
			return
		}
		if !sleep(ctx, jitter(max(slot.RetryAfter, 5*time.Millisecond))) {
			h.local.Release(1)
			h.divert(batch)
			return
		}
	}
}

// handBack returns the partition events of batch whole (fan.settle).
func handBack(batch []*share) {
	for _, s := range batch {
		if s.once() {
			s.f.settle(false)
		}
	}
}

// gone settles a batch Redis says is for a disabled or deleted webhook.
// The index says so too within moments of a real change; until it does
// (or if Redis came back empty: the registry check refuses that one) the
// events are handed back, never dropped on Redis's word alone.
func (h *hook) gone(batch []*share) {
	if cur, ok := h.hs.idx.Get(h.id); ok && cur.Enabled {
		handBack(batch)
		return
	}
	for _, s := range batch {
		_ = s.Ack()
	}
}

// dropStaleBefore acknowledges (drops) the shares stored before since.
func dropStaleBefore(since time.Time, batch []*share) []*share {
	keep := batch[:0]
	for _, s := range batch {
		if md, err := s.Metadata(); err == nil && md.Timestamp.Before(since) {
			_ = s.Ack()
			continue
		}
		keep = append(keep, s)
	}
	return keep
}

// divertAfter is how long a batch may wait for a slot before it moves to
// the retry subject: the linger and one request, so a slow endpoint's
// events leave the partition well within AckWait/3.
func (hs *hooks) divertAfter() time.Duration { return hs.cfg.DeliveryTimeout + hs.cfg.BatchLinger }

func (h *hook) divert(batch []*share) {
	claimed := batch[:0:0]
	for _, s := range batch {
		if s.once() {
			claimed = append(claimed, s)
		}
	}
	if len(claimed) > 0 {
		claimed[0].retry.divert(claimed)
	}
}

// close makes every pump hand its queue back instead of sending it;
// deliveries already started finish.
func (hs *hooks) close() { hs.closing.Store(true) }

// wait waits for every pump and delivery to end (shutdown).
func (hs *hooks) wait() { hs.wg.Wait() }
