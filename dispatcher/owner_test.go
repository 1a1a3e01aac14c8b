package dispatcher

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/test/harness"
)

const testPartitions = 16

// ownerTimeline records which replica consumes each partition, across every
// owner of a test, and every start or stop that would let two consume one
// partition at once. Callbacks run under its lock, so the order of the
// records is the order of the calls.
type ownerTimeline struct {
	mu         sync.Mutex
	active     map[int]string
	violations []string
}

func newOwnerTimeline() *ownerTimeline { return &ownerTimeline{active: map[int]string{}} }

func (tl *ownerTimeline) hooks(replica *string) (start, stop func(int)) {
	start = func(p int) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		if cur := tl.active[p]; cur != "" {
			tl.violations = append(tl.violations, fmt.Sprintf("partition %d started by %s while %s consumes it", p, *replica, cur))
		}
		tl.active[p] = *replica
	}
	stop = func(p int) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		if cur := tl.active[p]; cur != *replica {
			tl.violations = append(tl.violations, fmt.Sprintf("partition %d stopped by %s while %q consumes it", p, *replica, cur))
		}
		delete(tl.active, p)
	}
	return start, stop
}

// consumers returns how many partitions each replica consumes.
func (tl *ownerTimeline) consumers() map[string]int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := map[string]int{}
	for _, r := range tl.active {
		n[r]++
	}
	return n
}

func (tl *ownerTimeline) check(tb testing.TB) {
	tb.Helper()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, v := range tl.violations {
		tb.Error(v)
	}
}

// ownerLog is a zerolog writer safe to read while an owner writes.
type ownerLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *ownerLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the log lines that contain s.
func (b *ownerLog) lines(s string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for l := range strings.Lines(b.buf.String()) {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// testOwner is an owner with fast settings whose callbacks feed tl.
func testOwner(st partitionStore, tl *ownerTimeline, log *ownerLog) *owner {
	o := newOwner(st, testPartitions, zerolog.New(log), nil, nil)
	o.start, o.stop = tl.hooks(&o.replica)
	// Calls get a generous 150ms so a loaded machine does not turn slow
	// answers into failures; the fail-safe then stops a lease 200ms old.
	o.tick, o.ttl, o.callTimeout = 50*time.Millisecond, 400*time.Millisecond, 150*time.Millisecond
	return o
}

// runOwner runs o until the returned function is called (or the test
// ends); that function returns once Run has returned nil.
func runOwner(tb testing.TB, o *owner) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("owner.Run() = %v, want nil", err)
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// waitOwners polls cond until it holds, or fails the test after a deadline
// generous enough for a loaded 2-core machine.
func waitOwners(tb testing.TB, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not reached after 15s: %v", what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// balancedOwners reports why owners and Redis do not yet agree on a fair split
// of every partition among owners, or nil once they do.
func balancedOwners(s *subscriptions.Store, owners ...*owner) func() error {
	return func() error {
		inRedis, err := s.PartitionOwners(context.Background(), testPartitions)
		if err != nil {
			return err
		}
		minN, maxN, total := testPartitions, 0, 0
		for _, o := range owners {
			var want []int
			for p, r := range inRedis {
				if r == o.replica {
					want = append(want, p)
				}
			}
			if got := o.owned(); !slices.Equal(got, want) {
				return fmt.Errorf("replica %s owns %v, Redis says %v", o.replica, got, want)
			}
			minN, maxN, total = min(minN, len(want)), max(maxN, len(want)), total+len(want)
		}
		if total != testPartitions || maxN-minN > 1 {
			return fmt.Errorf("owners hold %d of %d partitions, %d to %d each: %v", total, testPartitions, minN, maxN, inRedis)
		}
		return nil
	}
}

// owners returns the partition leases in Redis or fails the test.
func owners(tb testing.TB, s *subscriptions.Store) []string {
	tb.Helper()
	got, err := s.PartitionOwners(context.Background(), testPartitions)
	if err != nil {
		tb.Fatalf("PartitionOwners() = %v", err)
	}
	return got
}

func newPartitionStore(tb testing.TB) (*subscriptions.Store, *harness.Redis, *redis.Client) {
	tb.Helper()
	r := harness.StartRedis(tb)
	rdb := r.Client(tb)
	return subscriptions.New(rdb, subscriptions.Config{}), r, rdb
}

func TestShareOf(t *testing.T) {
	tests := []struct {
		n, replicas int
		shares      []int
		offsets     []int
	}{
		{16, 1, []int{16}, []int{0}},
		{16, 2, []int{8, 8}, []int{0, 8}},
		{16, 3, []int{6, 5, 5}, []int{0, 5, 10}},
		{16, 5, []int{4, 3, 3, 3, 3}, []int{0, 3, 6, 9, 12}},
		{2, 3, []int{1, 1, 0}, []int{0, 0, 1}},
	}
	for _, tt := range tests {
		var ids []string
		for i := range tt.replicas {
			ids = append(ids, fmt.Sprintf("r%02d", i))
		}
		var shares, offsets []int
		for _, id := range ids {
			s, off := shareOf(tt.n, ids, id)
			shares, offsets = append(shares, s), append(offsets, off)
		}
		if diff := cmp.Diff(tt.shares, shares); diff != "" {
			t.Errorf("shareOf(%d, %d replicas) shares (-want +got):\n%s", tt.n, tt.replicas, diff)
		}
		if diff := cmp.Diff(tt.offsets, offsets); diff != "" {
			t.Errorf("shareOf(%d, %d replicas) offsets (-want +got):\n%s", tt.n, tt.replicas, diff)
		}
	}
	// A replica missing from the reply counts itself in.
	if s, _ := shareOf(16, []string{"a"}, "b"); s != 8 {
		t.Errorf("shareOf(16, [a], b) share = %d, want 8", s)
	}
}

func TestOwnerTakesAll(t *testing.T) {
	s, _, rdb := newPartitionStore(t)
	tl, log := newOwnerTimeline(), &ownerLog{}
	o := testOwner(s, tl, log)
	stop := runOwner(t, o)
	waitOwners(t, "one owner holds every partition", balancedOwners(s, o))
	if diff := cmp.Diff(map[string]int{o.replica: testPartitions}, tl.consumers()); diff != "" {
		t.Errorf("consumers (-want +got):\n%s", diff)
	}

	stop()
	if got := tl.consumers(); len(got) != 0 {
		t.Errorf("consumers after shutdown = %v, want none", got)
	}
	if diff := cmp.Diff(make([]string, testPartitions), owners(t, s)); diff != "" {
		t.Errorf("leases after shutdown (-want +got):\n%s", diff)
	}
	if n := rdb.ZCard(context.Background(), "wp:replicas").Val(); n != 0 {
		t.Errorf("replicas after shutdown = %d, want 0 (Leave)", n)
	}
	if got := log.lines("partitions changed"); len(got) < 2 {
		t.Errorf("log has %d 'partitions changed' lines, want the acquisition and the shutdown:\n%s", len(got), got)
	}
	tl.check(t)
}

func TestOwnerRebalance(t *testing.T) {
	s, _, _ := newPartitionStore(t)
	tl, log := newOwnerTimeline(), &ownerLog{}
	a, b, c := testOwner(s, tl, log), testOwner(s, tl, log), testOwner(s, tl, log)

	runOwner(t, a)
	waitOwners(t, "a alone", balancedOwners(s, a))
	stopB := runOwner(t, b)
	waitOwners(t, "a and b split", balancedOwners(s, a, b))
	runOwner(t, c)
	waitOwners(t, "a, b and c split", balancedOwners(s, a, b, c))

	stopB()
	if got := owners(t, s); slices.Contains(got, b.replica) {
		t.Errorf("b's leases after a graceful stop: %v, want all released", got)
	}
	waitOwners(t, "a and c split after b left", balancedOwners(s, a, c))
	tl.check(t)
}

// TestOwnerHandOverSlowStop gives the newcomer whole ticks to try to claim
// each partition while its old owner is still stopping it: none may start
// before the stop returns and the lease is released.
func TestOwnerHandOverSlowStop(t *testing.T) {
	s, _, _ := newPartitionStore(t)
	tl, log := newOwnerTimeline(), &ownerLog{}
	a := testOwner(s, tl, log)
	a.ttl = 2 * time.Second // a's slow stops delay its renewals
	fb := newFaultyPartitions(s)
	b := testOwner(fb, tl, log)
	var slow atomic.Bool
	stop := a.stop
	a.stop = func(p int) {
		// Wait for at least one whole step of b (heartbeat, owners,
		// claims); not fatal: this runs on a's goroutine.
		for want, deadline := fb.calls.Load()+4, time.Now().Add(5*time.Second); slow.Load() &&
			fb.calls.Load() < want && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		stop(p)
	}
	runOwner(t, a)
	waitOwners(t, "a alone", balancedOwners(s, a))
	slow.Store(true)
	runOwner(t, b)
	t.Cleanup(func() { slow.Store(false) }) // before the owners' shutdown
	waitOwners(t, "a and b split", balancedOwners(s, a, b))
	slow.Store(false)
	tl.check(t)
}
