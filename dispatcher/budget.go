package dispatcher

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/semaphore"
)

// heldBatch is one batch's share of the replica's byte budget
// (Config.MaxBufferedBytes). A runner reserves a whole batch's worth
// (BatchMaxBytes) before it fills the batch, gives back what the fetch
// did not use, and releases the rest when the delivery ends. So a replica
// holds at most MaxBufferedBytes of fetched events (plus one first event
// per waiting runner), whatever the size of the events: 500 KB events no
// longer make a 1,000-message fetch hold 500 MB.
type heldBatch struct {
	budget *semaphore.Weighted
	stats  *Stats
	n      int64 // bytes reserved now
}

// reserve takes n bytes from the budget, waiting while it is exhausted;
// msgs (already held) are kept in progress meanwhile. It reports whether
// the bytes were taken (false once ctx is done).
func (h *heldBatch) reserve(ctx context.Context, n int, msgs []jetstream.Msg) bool {
	// ackWait/3 at the shortest settings is still seconds: refresh well
	// before the held messages' AckWait runs out.
	const refresh = 3 * time.Second
	for {
		wctx, cancel := context.WithTimeout(ctx, refresh)
		err := h.budget.Acquire(wctx, int64(n))
		cancel()
		if err == nil {
			h.n = int64(n)
			h.stats.BufferedBytes.Add(h.n)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		inProgress(msgs)
	}
}

// shrink gives back what msgs do not use of the reservation.
func (h *heldBatch) shrink(msgs []jetstream.Msg) {
	used := int64(0)
	for _, m := range msgs {
		used += int64(len(m.Data()))
	}
	// An event larger than the reservation keeps only the reservation:
	// nothing more was taken from the budget.
	if extra := h.n - used; extra > 0 {
		h.budget.Release(extra)
		h.stats.BufferedBytes.Add(-extra)
		h.n = used
	}
}

// release gives back the whole reservation; it may be called twice.
func (h *heldBatch) release() {
	if h.n > 0 {
		h.budget.Release(h.n)
		h.stats.BufferedBytes.Add(-h.n)
		h.n = 0
	}
}
