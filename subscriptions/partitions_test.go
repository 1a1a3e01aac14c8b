package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

const leaseTTL = 10 * time.Second

// owners returns PartitionOwners(n) or fails the test.
func owners(tb testing.TB, s *Store, n int) []string {
	tb.Helper()
	got, err := s.PartitionOwners(context.Background(), n)
	if err != nil {
		tb.Fatalf("PartitionOwners(%d) = %v", n, err)
	}
	return got
}

// mustClaim claims p for replica and fails the test unless it is held.
func mustClaim(tb testing.TB, s *Store, p int, replica string, ttl time.Duration) {
	tb.Helper()
	ok, err := s.ClaimPartition(context.Background(), p, replica, ttl)
	if err != nil || !ok {
		tb.Fatalf("ClaimPartition(%d, %s) = %v, %v, want true, nil", p, replica, ok, err)
	}
}

// redisNowMs is Redis's clock, the one every lease and heartbeat uses.
func redisNowMs(tb testing.TB, rdb *redis.Client) int64 {
	tb.Helper()
	t, err := rdb.Time(context.Background()).Result()
	if err != nil {
		tb.Fatal(err)
	}
	return t.UnixMilli()
}

func TestHeartbeat(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	// A replica last seen an hour ago (Redis clock) is dropped, one seen
	// just now is kept, whatever order they joined in.
	stale := float64(redisNowMs(t, rdb) - time.Hour.Milliseconds())
	if err := rdb.ZAdd(ctx, keyReplicas, redis.Z{Score: stale, Member: "old"}).Err(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"c", "a"} {
		if _, err := s.Heartbeat(ctx, r, leaseTTL); err != nil {
			t.Fatalf("Heartbeat(%s) = %v", r, err)
		}
	}
	before := redisNowMs(t, rdb)
	got, err := s.Heartbeat(ctx, "b", leaseTTL)
	if err != nil {
		t.Fatalf("Heartbeat(b) = %v", err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, got); diff != "" {
		t.Errorf("Heartbeat(b) live replicas (-want +got):\n%s", diff)
	}
	score, err := rdb.ZScore(ctx, keyReplicas, "b").Result()
	if err != nil {
		t.Fatal(err)
	}
	if after := redisNowMs(t, rdb); int64(score) < before || int64(score) > after {
		t.Errorf("heartbeat score %v, want Redis TIME in [%d, %d]", score, before, after)
	}

	if err := s.Leave(ctx, "c"); err != nil {
		t.Fatalf("Leave(c) = %v", err)
	}
	got, err = s.Heartbeat(ctx, "a", leaseTTL)
	if err != nil {
		t.Fatalf("Heartbeat(a) = %v", err)
	}
	if diff := cmp.Diff([]string{"a", "b"}, got); diff != "" {
		t.Errorf("Heartbeat(a) after Leave(c) (-want +got):\n%s", diff)
	}
}

func TestClaimPartition(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	tests := []struct {
		name    string
		p       int
		replica string
		want    bool
	}{
		{"free", 3, "a", true},
		{"held by another", 3, "b", false},
		{"held by itself", 3, "a", true},
		{"another free one", 0, "b", true},
	}
	for _, tt := range tests {
		got, err := s.ClaimPartition(ctx, tt.p, tt.replica, leaseTTL)
		if err != nil || got != tt.want {
			t.Errorf("%s: ClaimPartition(%d, %s) = %v, %v, want %v, nil", tt.name, tt.p, tt.replica, got, err, tt.want)
		}
	}
	if diff := cmp.Diff([]string{"b", "", "", "a"}, owners(t, s, 4)); diff != "" {
		t.Errorf("PartitionOwners(4) (-want +got):\n%s", diff)
	}

	// Claiming one's own lease again refreshes it.
	if err := rdb.PExpire(ctx, keyPartition(3), time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, s, 3, "a", leaseTTL)
	if ttl := rdb.PTTL(ctx, keyPartition(3)).Val(); ttl <= time.Second {
		t.Errorf("PTTL after re-claim = %v, want > 1s (refreshed to %v)", ttl, leaseTTL)
	}

	// The lease really expires: a short one frees the partition for another.
	mustClaim(t, s, 5, "a", 20*time.Millisecond)
	for deadline := time.Now().Add(5 * time.Second); owners(t, s, 6)[5] != ""; {
		if time.Now().After(deadline) {
			t.Fatal("a 20ms lease still held after 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mustClaim(t, s, 5, "b", leaseTTL)
}

func TestClaimPartitionConcurrent(t *testing.T) {
	s, _ := newStore(t, Config{})
	const replicas = 8
	var won atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, replicas)
	for i := range replicas {
		wg.Go(func() {
			ok, err := s.ClaimPartition(context.Background(), 7, fmt.Sprintf("r%d", i), leaseTTL)
			if err != nil {
				errc <- err
			}
			if ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Errorf("ClaimPartition() = %v", err)
	}
	if n := won.Load(); n != 1 {
		t.Errorf("%d concurrent claims of one partition won, want 1", n)
	}
}

func TestRenewPartitions(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	for p := range 4 {
		mustClaim(t, s, p, "a", leaseTTL)
	}
	// 1 expired and was taken by b; 2 expired and is still free.
	for _, p := range []int{1, 2} {
		rdb.Del(ctx, keyPartition(p))
	}
	mustClaim(t, s, 1, "b", leaseTTL)
	for _, p := range []int{0, 3} {
		if err := rdb.PExpire(ctx, keyPartition(p), time.Second).Err(); err != nil {
			t.Fatal(err)
		}
	}

	kept, err := s.RenewPartitions(ctx, "a", []int{3, 2, 1, 0}, leaseTTL)
	if err != nil {
		t.Fatalf("RenewPartitions() = %v", err)
	}
	if diff := cmp.Diff([]int{3, 2, 0}, kept); diff != "" {
		t.Errorf("RenewPartitions(a, [3 2 1 0]) kept (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "b", "a", "a"}, owners(t, s, 4)); diff != "" {
		t.Errorf("owners after renew (-want +got):\n%s", diff)
	}
	for _, p := range kept {
		if ttl := rdb.PTTL(ctx, keyPartition(p)).Val(); ttl <= time.Second {
			t.Errorf("PTTL(partition %d) after renew = %v, want > 1s", p, ttl)
		}
	}
	if ttl := rdb.PTTL(ctx, keyPartition(1)).Val(); ttl <= 0 {
		t.Errorf("b's lease PTTL = %v, want it untouched and positive", ttl)
	}

	kept, err = s.RenewPartitions(ctx, "b", []int{0, 3}, leaseTTL)
	if err != nil || len(kept) != 0 {
		t.Errorf("RenewPartitions(b, a's partitions) = %v, %v, want [], nil", kept, err)
	}
	kept, err = s.RenewPartitions(ctx, "a", nil, leaseTTL)
	if err != nil || len(kept) != 0 {
		t.Errorf("RenewPartitions(a, nil) = %v, %v, want [], nil", kept, err)
	}
}

func TestReleasePartition(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	mustClaim(t, s, 0, "a", leaseTTL)
	mustClaim(t, s, 1, "b", leaseTTL)
	// A late release of a lease another replica holds changes nothing.
	if err := s.ReleasePartition(ctx, 1, "a"); err != nil {
		t.Fatalf("ReleasePartition(1, a) = %v", err)
	}
	if err := s.ReleasePartition(ctx, 0, "a"); err != nil {
		t.Fatalf("ReleasePartition(0, a) = %v", err)
	}
	if err := s.ReleasePartition(ctx, 2, "a"); err != nil {
		t.Fatalf("ReleasePartition(2, a) of a free partition = %v", err)
	}
	if diff := cmp.Diff([]string{"", "b", ""}, owners(t, s, 3)); diff != "" {
		t.Errorf("owners after release (-want +got):\n%s", diff)
	}
	mustClaim(t, s, 0, "b", leaseTTL)
}

func TestPartitionsInvalid(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{"heartbeat no replica", func() error { _, err := s.Heartbeat(ctx, "", leaseTTL); return err }},
		{"heartbeat no ttl", func() error { _, err := s.Heartbeat(ctx, "a", 0); return err }},
		{"claim negative", func() error { _, err := s.ClaimPartition(ctx, -1, "a", leaseTTL); return err }},
		{"claim no replica", func() error { _, err := s.ClaimPartition(ctx, 0, "", leaseTTL); return err }},
		{"claim sub-ms ttl", func() error { _, err := s.ClaimPartition(ctx, 0, "a", time.Microsecond); return err }},
		{"renew negative", func() error { _, err := s.RenewPartitions(ctx, "a", []int{0, -2}, leaseTTL); return err }},
		{"renew no replica", func() error { _, err := s.RenewPartitions(ctx, "", []int{0}, leaseTTL); return err }},
		{"release negative", func() error { return s.ReleasePartition(ctx, -1, "a") }},
		{"owners negative", func() error { _, err := s.PartitionOwners(ctx, -1); return err }},
	}
	for _, tt := range tests {
		if err := tt.call(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error = %v, want ErrInvalid", tt.name, err)
		}
	}
	if got := owners(t, s, 0); len(got) != 0 {
		t.Errorf("PartitionOwners(0) = %v, want []", got)
	}
}
