package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// faultyPartitions is a partitionStore that counts calls, fails every call
// while down is set, and blocks every call, ignoring its context, while
// hang is set, until unhang.
type faultyPartitions struct {
	partitionStore
	down, hang atomic.Bool
	unhang     chan struct{}
	once       sync.Once
	calls      atomic.Int64
}

var errPartitionsDown = errors.New("redis down (test)")

func newFaultyPartitions(st partitionStore) *faultyPartitions {
	return &faultyPartitions{partitionStore: st, unhang: make(chan struct{})}
}

// release lets hung calls return, for good. A test that sets hang
// registers it as a cleanup after runOwner's, so it runs first and the
// owner's shutdown is not left waiting for a hung call.
func (f *faultyPartitions) release() {
	f.hang.Store(false)
	f.once.Do(func() { close(f.unhang) })
}

func (f *faultyPartitions) fault() error {
	f.calls.Add(1)
	if f.hang.Load() {
		<-f.unhang
	}
	if f.down.Load() {
		return errPartitionsDown
	}
	return nil
}

// ticks waits until the owner has made n more calls through f.
func (f *faultyPartitions) ticks(tb testing.TB, n int64) {
	tb.Helper()
	want := f.calls.Load() + n
	waitOwners(tb, fmt.Sprintf("%d more calls", n), func() error {
		if got := f.calls.Load(); got < want {
			return fmt.Errorf("%d calls, want %d", got, want)
		}
		return nil
	})
}

func (f *faultyPartitions) Heartbeat(ctx context.Context, replica string, ttl time.Duration) ([]string, error) {
	if err := f.fault(); err != nil {
		return nil, err
	}
	return f.partitionStore.Heartbeat(ctx, replica, ttl)
}

func (f *faultyPartitions) ClaimPartition(ctx context.Context, p int, replica string, ttl time.Duration) (bool, error) {
	if err := f.fault(); err != nil {
		return false, err
	}
	return f.partitionStore.ClaimPartition(ctx, p, replica, ttl)
}

func (f *faultyPartitions) RenewPartitions(ctx context.Context, replica string, ps []int, ttl time.Duration) ([]int, error) {
	if err := f.fault(); err != nil {
		return nil, err
	}
	return f.partitionStore.RenewPartitions(ctx, replica, ps, ttl)
}

func (f *faultyPartitions) ReleasePartition(ctx context.Context, p int, replica string) error {
	if err := f.fault(); err != nil {
		return err
	}
	return f.partitionStore.ReleasePartition(ctx, p, replica)
}

func (f *faultyPartitions) Leave(ctx context.Context, replica string) error {
	if err := f.fault(); err != nil {
		return err
	}
	return f.partitionStore.Leave(ctx, replica)
}

func (f *faultyPartitions) PartitionOwners(ctx context.Context, n int) ([]string, error) {
	if err := f.fault(); err != nil {
		return nil, err
	}
	return f.partitionStore.PartitionOwners(ctx, n)
}

func TestOwnerCrash(t *testing.T) {
	s, _, _ := newPartitionStore(t)
	tl, log := newOwnerTimeline(), &ownerLog{}
	a := testOwner(s, tl, log)
	fb := newFaultyPartitions(s)
	b := testOwner(fb, tl, log)
	// b's leases outlive it by 2s, so the check below that they were left
	// behind cannot race with their expiry.
	b.ttl = 2 * time.Second
	runOwner(t, a)
	crash := runOwner(t, b)
	waitOwners(t, "a and b split", balancedOwners(s, a, b))
	held := b.owned()

	fb.down.Store(true) // b loses Redis and dies: nothing released, no Leave
	crash()
	left := owners(t, s)
	for _, p := range held {
		if left[p] != b.replica {
			t.Errorf("partition %d right after b's crash: owner %q, want b's lease left behind", p, left[p])
		}
	}
	waitOwners(t, "a takes over b's partitions after their leases expire", balancedOwners(s, a))
	if got := log.lines("not released on shutdown"); len(got) != 1 {
		t.Errorf("log has %d 'not released' lines, want 1 (b's):\n%s", len(got), got)
	}
	tl.check(t)
}

func TestOwnerLostLease(t *testing.T) {
	s, _, rdb := newPartitionStore(t)
	tl, log := newOwnerTimeline(), &ownerLog{}
	fb := newFaultyPartitions(s)
	o := testOwner(fb, tl, log)
	runOwner(t, o)
	waitOwners(t, "o holds every partition", balancedOwners(s, o))

	// Another replica took partition 3 while o was paused past its lease.
	if err := rdb.Set(context.Background(), "wp:part:3", "thief", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	waitOwners(t, "o stops partition 3", func() error {
		if got := tl.consumers()[o.replica]; got != testPartitions-1 || slices.Contains(o.owned(), 3) {
			return fmt.Errorf("o consumes %d partitions, owns %v", got, o.owned())
		}
		return nil
	})
	fb.ticks(t, 20) // o keeps wanting all 16 but must not take 3 back
	if got := o.owned(); slices.Contains(got, 3) {
		t.Errorf("owned() = %v, want partition 3 left to its new owner", got)
	}
	if got := owners(t, s)[3]; got != "thief" {
		t.Errorf("partition 3 owner = %q, want thief", got)
	}
	if got := log.lines(`"lost":[3]`); len(got) != 1 {
		t.Errorf("log has %d lines with lost [3], want 1:\n%s", len(got), log.lines(""))
	}
	tl.check(t)
}

func TestOwnerRedisDown(t *testing.T) {
	s, r, _ := newPartitionStore(t)
	tl, log := newOwnerTimeline(), &ownerLog{}
	fb := newFaultyPartitions(s)
	o := testOwner(fb, tl, log)
	runOwner(t, o)
	waitOwners(t, "o holds every partition", balancedOwners(s, o))

	const down, back = "redis unavailable", "redis available again"
	before := len(log.lines(down))
	r.Stop()
	waitOwners(t, "fail safe stops every partition", func() error {
		if n, ps := len(tl.consumers()), o.owned(); n > 0 || len(ps) > 0 {
			return fmt.Errorf("%d partitions consumed, %v owned", n, ps)
		}
		return nil
	})
	fb.ticks(t, 20) // Redis stays down for many more ticks
	if got := len(log.lines(down)) - before; got > 1 {
		t.Errorf("%d %q lines while Redis was down, want at most 1 (one per state change):\n%s", got, down, log.lines(""))
	}
	if got := log.lines(`"abandoned"`); len(got) == 0 {
		t.Errorf("no 'abandoned' line for the fail-safe stop:\n%s", log.lines(""))
	}

	r.Start(t) // empty: the leases are gone with the data
	waitOwners(t, "o holds every partition again", balancedOwners(s, o))
	if d, b := len(log.lines(down)), len(log.lines(back)); d == 0 || d != b {
		t.Errorf("%d %q and %d %q lines, want as many of each, at least one:\n%s", d, down, b, back, log.lines(""))
	}
	tl.check(t)
}

func TestOwnerHungRedis(t *testing.T) {
	s, _, _ := newPartitionStore(t)
	tl, log := newOwnerTimeline(), &ownerLog{}
	fb := newFaultyPartitions(s)
	o := testOwner(fb, tl, log)
	runOwner(t, o)
	t.Cleanup(fb.release) // after runOwner's: runs first
	waitOwners(t, "o holds every partition", balancedOwners(s, o))

	// Calls that never return must not keep o consuming past its leases.
	fb.hang.Store(true)
	waitOwners(t, "fail safe stops every partition", func() error {
		if n, ps := len(tl.consumers()), o.owned(); n > 0 || len(ps) > 0 {
			return fmt.Errorf("%d partitions consumed, %v owned", n, ps)
		}
		return nil
	})
	fb.release()
	waitOwners(t, "o holds every partition again", balancedOwners(s, o))
	tl.check(t)
}

func TestOwnerFailSafe(t *testing.T) {
	fb := newFaultyPartitions(nil)
	fb.down.Store(true)
	tl, log := newOwnerTimeline(), &ownerLog{}
	o := testOwner(fb, tl, log)
	// Lease 10s, tick 1s, calls 1s: a lease confirmed 8s ago or more may
	// expire before the next renewal returns.
	o.tick, o.ttl, o.callTimeout = time.Second, 10*time.Second, time.Second
	now := time.Now()
	for p, age := range []time.Duration{0, 7 * time.Second, 8500 * time.Millisecond, time.Hour} {
		o.start(p)
		o.hold(p, now.Add(-age))
	}
	o.step(context.Background())
	if diff := cmp.Diff([]int{0, 1}, o.owned()); diff != "" {
		t.Errorf("owned() after a failed renewal (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{o.replica: 2}, tl.consumers()); diff != "" {
		t.Errorf("consumers after a failed renewal (-want +got):\n%s", diff)
	}
	if got := log.lines(`"abandoned":[2,3]`); len(got) != 1 {
		t.Errorf("log has %d lines with abandoned [2 3], want 1:\n%s", len(got), log.lines(""))
	}
	tl.check(t)
}
