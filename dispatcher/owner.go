package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// partitionStore is the owner's view of the registry: replica heartbeats
// and partition leases (*subscriptions.Store implements it).
type partitionStore interface {
	Heartbeat(ctx context.Context, replica string, ttl time.Duration) ([]string, error)
	ClaimPartition(ctx context.Context, p int, replica string, ttl time.Duration) (bool, error)
	RenewPartitions(ctx context.Context, replica string, ps []int, ttl time.Duration) ([]int, error)
	ReleasePartition(ctx context.Context, p int, replica string) error
	Leave(ctx context.Context, replica string) error
	PartitionOwners(ctx context.Context, n int) ([]string, error)
}

const (
	// ownerTick is how often an owner heartbeats, renews and rebalances: a
	// replica joining or leaving gracefully moves partitions within two
	// ticks (partition spike, Q3).
	ownerTick = time.Second
	// ownerTTL is the lease and heartbeat lifetime: a crashed replica's
	// partitions move after about ownerTTL + ownerTick. Three ticks let
	// one failed renewal pass without dropping anything.
	ownerTTL = 3 * time.Second
)

// errStalled is returned while an earlier Redis call that timed out is
// still running: the owner keeps at most one call in flight.
var errStalled = errors.New("dispatcher: previous redis call still running")

// owner decides which partitions this replica consumes. Every tick it
// renews its leases, heartbeats, and moves towards its fair share: of P
// partitions and R live replicas, the first P%R replicas by sorted id take
// ceil(P/R), the others floor(P/R), so the shares add up to exactly P and
// every replica computes the same split from the same heartbeat set.
//
// stop(p) is always called, and returns, before p's lease is released,
// and start(p) only after it is claimed, so on a graceful hand-over two
// replicas never consume one partition at once. After a pause (a GC stall,
// a slow or unreachable Redis) a lease can expire while its owner still
// consumes; another replica may then take the partition before the old
// owner notices at its next renewal. That overlap of at most about one
// tick is tolerated: duplicates only arise through AckWait redelivery
// (at-least-once holds) and the per-webhook cap is a Redis semaphore.
//
// start must not block (it launches the partition's fetch loop); stop
// should return well within ttl - tick, since renewals wait for it.
type owner struct {
	partitions  int
	replica     string        // a random id per process
	tick        time.Duration // default ownerTick
	ttl         time.Duration // default ownerTTL
	callTimeout time.Duration // the longest one Redis call may take; default tick/4
	store       partitionStore
	log         zerolog.Logger
	start, stop func(p int)

	mu   sync.Mutex
	held map[int]time.Time // partition -> when the last request confirming its lease was sent

	busy    chan struct{} // capacity 1: the Redis call in flight
	failing bool          // a Redis error was logged and no step has succeeded since
}

// newOwner returns an owner of partitions 0..partitions-1 with the
// default tick and ttl and a fresh replica id.
func newOwner(st partitionStore, partitions int, log zerolog.Logger, start, stop func(p int)) *owner {
	return &owner{
		partitions:  partitions,
		replica:     uuid.NewString(),
		tick:        ownerTick,
		ttl:         ownerTTL,
		callTimeout: ownerTick / 4,
		store:       st,
		log:         log,
		start:       start,
		stop:        stop,
		held:        map[int]time.Time{},
		busy:        make(chan struct{}, 1),
	}
}

// owned returns the partitions this replica holds, sorted.
func (o *owner) owned() []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Sorted(maps.Keys(o.held))
}

// Run owns partitions until ctx is done, then stops every partition,
// releases its leases and leaves the replica set, so the others take
// over on their next tick, and returns nil. If a Redis call timed out and
// is still running, Run waits for it: the client's own timeouts end it.
func (o *owner) Run(ctx context.Context) error {
	t := time.NewTicker(o.tick)
	defer t.Stop()
	for {
		o.step(ctx)
		select {
		case <-ctx.Done():
			o.shutdown(context.WithoutCancel(ctx))
			return nil
		case <-t.C:
		}
	}
}

// ownerChange is what one step did, for its single log line.
type ownerChange struct {
	acquired, released, lost, abandoned []int
	replicas                            int
}

func (c ownerChange) empty() bool {
	return len(c.acquired)+len(c.released)+len(c.lost)+len(c.abandoned) == 0
}

// step is one tick: renew first (the only safety-critical call), then
// heartbeat and rebalance within half a tick, so a slow Redis never
// delays the next renewal by more than that.
func (o *owner) step(ctx context.Context) {
	var ch ownerChange
	err := o.renew(ctx, &ch)
	if err == nil {
		err = o.rebalance(ctx, time.Now().Add(o.tick/2), &ch)
	}
	o.logChange(ch)
	if ctx.Err() == nil { // else shutting down: errors are cancellations
		o.logHealth(err)
	}
}

// renew extends every held lease. A lease another replica took is
// stopped at once. If Redis does not answer, partitions whose leases may
// expire before the next renewal can complete are stopped (fail safe):
// held since at, p's lease lasts until at+ttl, and the next renewal
// returns by now+tick+callTimeout at the latest.
func (o *owner) renew(ctx context.Context, ch *ownerChange) error {
	ps := o.owned()
	if len(ps) == 0 {
		return nil
	}
	sent := time.Now()
	kept, err := boundedCall(ctx, o, func(ctx context.Context) ([]int, error) {
		return o.store.RenewPartitions(ctx, o.replica, ps, o.ttl)
	})
	if err != nil {
		now := time.Now()
		for _, p := range ps {
			if at, _ := o.since(p); now.Sub(at) >= o.ttl-o.tick-o.callTimeout {
				o.drop(p)
				ch.abandoned = append(ch.abandoned, p)
			}
		}
		return fmt.Errorf("renew partitions: %w", err)
	}
	for _, p := range ps {
		if slices.Contains(kept, p) {
			o.hold(p, sent)
		} else {
			o.drop(p)
			ch.lost = append(ch.lost, p)
		}
	}
	return nil
}

// rebalance heartbeats and then sheds or claims partitions towards this
// replica's share, starting from a rank-dependent offset so replicas
// prefer disjoint ranges and rarely race for the same partition. It stops
// claiming or shedding at until and continues on the next tick.
func (o *owner) rebalance(ctx context.Context, until time.Time, ch *ownerChange) error {
	replicas, err := boundedCall(ctx, o, func(ctx context.Context) ([]string, error) {
		return o.store.Heartbeat(ctx, o.replica, o.ttl)
	})
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	ch.replicas = len(replicas)
	share, offset := shareOf(o.partitions, replicas, o.replica)
	dist := func(p int) int { return (p - offset + o.partitions) % o.partitions }

	held := o.owned()
	// Shed the partitions farthest from this replica's range first.
	slices.SortFunc(held, func(a, b int) int { return dist(b) - dist(a) })
	for i := 0; i < len(held)-share && time.Now().Before(until); i++ {
		ch.released = append(ch.released, held[i])
		if err := o.release(ctx, held[i]); err != nil {
			return fmt.Errorf("%w (the lease will expire)", err)
		}
	}
	if len(held) >= share {
		return nil
	}
	return o.claim(ctx, until, share-len(held), offset, ch)
}

// claim takes up to need free partitions, in order from offset. A lease
// still in this replica's name (kept through a Redis error or a failed
// release) counts as free for it.
func (o *owner) claim(ctx context.Context, until time.Time, need, offset int, ch *ownerChange) error {
	owners, err := boundedCall(ctx, o, func(ctx context.Context) ([]string, error) {
		return o.store.PartitionOwners(ctx, o.partitions)
	})
	if err != nil {
		return fmt.Errorf("partition owners: %w", err)
	}
	for i := 0; i < len(owners) && need > 0 && time.Now().Before(until); i++ {
		p := (offset + i) % o.partitions
		if _, held := o.since(p); held || (owners[p] != "" && owners[p] != o.replica) {
			continue
		}
		sent := time.Now()
		ok, err := boundedCall(ctx, o, func(ctx context.Context) (bool, error) {
			return o.store.ClaimPartition(ctx, p, o.replica, o.ttl)
		})
		if err != nil {
			return fmt.Errorf("claim partition %d: %w", p, err)
		}
		if ok {
			o.hold(p, sent)
			o.start(p)
			ch.acquired = append(ch.acquired, p)
			need--
		}
	}
	return nil
}

// shutdown stops and releases every partition, then leaves. Redis errors
// are logged once: the leases and the heartbeat expire by themselves.
func (o *owner) shutdown(ctx context.Context) {
	var errs []error
	ps := o.owned()
	for _, p := range ps {
		errs = append(errs, o.release(ctx, p))
	}
	if _, err := boundedCall(ctx, o, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, o.store.Leave(ctx, o.replica)
	}); err != nil {
		errs = append(errs, fmt.Errorf("leave: %w", err))
	}
	o.logChange(ownerChange{released: ps})
	if err := errors.Join(errs...); err != nil {
		o.log.Warn().Err(err).Dur("duration_ms", o.ttl).Msg("partition ownership: leases not released on shutdown, they expire after duration_ms")
	}
	o.busy <- struct{}{} // wait for a timed-out call still running
}

// logChange logs one line per step that changed ownership, none for a
// step that did not.
func (o *owner) logChange(ch ownerChange) {
	if ch.empty() {
		return
	}
	ev := o.log.Info().Ints("partitions", o.owned())
	keys := [...]string{"acquired", "released", "lost", "abandoned"}
	for i, ps := range [][]int{ch.acquired, ch.released, ch.lost, ch.abandoned} {
		if len(ps) > 0 {
			ev = ev.Ints(keys[i], ps)
		}
	}
	if ch.replicas > 0 {
		ev = ev.Int("replicas", ch.replicas)
	}
	ev.Msg("partitions changed")
}

// logHealth logs once when Redis starts failing and once when it works
// again, never once per tick while it is down.
func (o *owner) logHealth(err error) {
	switch {
	case err != nil && !o.failing:
		o.failing = true
		o.log.Warn().Err(err).Msg("partition ownership: redis unavailable, leases that may expire are stopped")
	case err == nil && o.failing:
		o.failing = false
		o.log.Info().Msg("partition ownership: redis available again")
	}
}

func (o *owner) hold(p int, at time.Time) {
	o.mu.Lock()
	o.held[p] = at
	o.mu.Unlock()
}

// since returns when p's lease was last confirmed, and whether it is held.
func (o *owner) since(p int) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	at, ok := o.held[p]
	return at, ok
}

// drop stops p and forgets it; stop returns before the caller releases
// the lease.
func (o *owner) drop(p int) {
	o.stop(p)
	o.mu.Lock()
	delete(o.held, p)
	o.mu.Unlock()
}

// release stops p, then gives its lease back: never two consumers of p.
func (o *owner) release(ctx context.Context, p int) error {
	o.drop(p)
	_, err := boundedCall(ctx, o, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, o.store.ReleasePartition(ctx, p, o.replica)
	})
	if err != nil {
		return fmt.Errorf("release partition %d: %w", p, err)
	}
	return nil
}

// shareOf returns how many of n partitions replica should own among the
// sorted live replicas, and the offset its claims start from.
func shareOf(n int, replicas []string, replica string) (share, offset int) {
	rank, found := slices.BinarySearch(replicas, replica)
	r := len(replicas)
	if !found {
		r++ // not in the reply (cannot happen after its own heartbeat): count it anyway
	}
	share = n / r
	if rank < n%r {
		share++
	}
	return share, rank * n / r
}

// boundedCall runs f with the owner's call timeout and returns when f does or
// the timeout passes, whichever is first, so a hung Redis connection
// cannot hold up the fail-safe. The client's own timeouts end a call that
// ignores its context; until then further calls fail with errStalled.
func boundedCall[T any](ctx context.Context, o *owner, f func(context.Context) (T, error)) (T, error) {
	var zero T
	select {
	case o.busy <- struct{}{}:
	default:
		return zero, errStalled
	}
	ctx, cancel := context.WithTimeout(ctx, o.callTimeout)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	res := make(chan result, 1)
	go func() {
		v, err := f(ctx)
		<-o.busy // before the answer, so the caller's next call finds it free
		res <- result{v, err}
	}()
	select {
	case r := <-res:
		return r.v, r.err
	case <-ctx.Done():
		select {
		case r := <-res: // finished at the deadline: keep the answer
			return r.v, r.err
		default:
			return zero, ctx.Err()
		}
	}
}
