package test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/subscriptions"
)

// Helpers of the partitioned-consumption tests (issue 14): partitions of
// accounts, their owners in Redis, retry subjects and consumers, and a
// per-webhook concurrency gauge.

const retryStream = "EVENTS_RETRY"

// needPartitions skips t under per-webhook consumption and returns the
// number of partitions.
func needPartitions(t *testing.T) int {
	t.Helper()
	n := testPartitions()
	if n == 0 {
		// make test leaves these tests out of its per-webhook pass (-skip
		// $(PARTITION_TESTS)); run alone in that model they cannot pass.
		t.Fatal("per-webhook consumption (WEBHOOKD_TEST_PARTITIONS=0) has no partitions, owners or retry subjects")
	}
	return n
}

// partitionOf is the partition nats-server's partition(n, 3) transform
// gives account (dispatcher/partition.go): FNV-1a 32 of the token, mod n.
func partitionOf(account string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(account))
	return int(h.Sum32() % uint32(n))
}

// accountsIn returns count accounts named prefix-<i> that map to
// partition k of n.
func accountsIn(prefix string, k, n, count int) []string {
	var out []string
	for i := 0; len(out) < count; i++ {
		if a := prefix + "-" + strconv.Itoa(i); partitionOf(a, n) == k {
			out = append(out, a)
		}
	}
	return out
}

// accountPerPartition returns n accounts, the k-th in partition k.
func accountPerPartition(prefix string, n int) []string {
	out := make([]string, n)
	found := 0
	for i := 0; found < n; i++ {
		a := prefix + "-" + strconv.Itoa(i)
		if k := partitionOf(a, n); out[k] == "" {
			out[k] = a
			found++
		}
	}
	return out
}

// owners returns the replica holding each partition ("" when free).
func (e *env) owners(n int) []string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o, err := e.store.PartitionOwners(ctx, n)
	if err != nil {
		e.t.Fatalf("PartitionOwners: %v", err)
	}
	return o
}

// shares counts the partitions each replica holds; "" counts free ones.
func shares(owners []string) map[string]int {
	m := map[string]int{}
	for _, o := range owners {
		m[o]++
	}
	return m
}

// waitOwners waits until the partitions are held by exactly len(want)
// replicas, none free, with the given shares (sorted, largest first), and
// returns the owner of each partition.
func (e *env) waitOwners(n int, timeout time.Duration, want ...int) []string {
	e.t.Helper()
	var last []string
	ok := poll(timeout, func() bool {
		last = e.owners(n)
		sh := shares(last)
		if sh[""] > 0 || len(sh) != len(want) {
			return false
		}
		got := make([]int, 0, len(sh))
		for _, c := range sh {
			got = append(got, c)
		}
		sort.Sort(sort.Reverse(sort.IntSlice(got)))
		for i := range want {
			if got[i] != want[i] {
				return false
			}
		}
		return true
	})
	if !ok {
		e.t.Fatalf("partition shares after %v = %v, want %v among %d replicas", timeout, shares(last), want, len(want))
	}
	return last
}

// retryHeld is how many events the retry stream holds for webhook id
// (0 before the stream exists): its single copies on webhookd.retry.<id>
// and, on webhookd.retry.<id>.<n>, bundles of n events each.
func (e *env) retryHeld(id string) uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, retryStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	if err != nil {
		e.t.Fatalf("retry stream: %v", err)
	}
	var n uint64
	for _, filter := range []string{"webhookd.retry." + id, "webhookd.retry." + id + ".*"} {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			e.t.Fatalf("retry stream info: %v", err)
		}
		for subject, msgs := range info.State.Subjects {
			n += msgs * bundleSize(subject)
		}
	}
	return n
}

// bundleSize is how many events a message on retry subject holds.
func bundleSize(subject string) uint64 {
	tokens := strings.Split(subject, ".")
	if len(tokens) == 4 {
		if n, err := strconv.ParseUint(tokens[3], 10, 64); err == nil {
			return n
		}
	}
	return 1
}

// retryLastSeq is the retry stream's last sequence: it grows with every
// event moved to a retry subject.
func (e *env) retryLastSeq() uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, retryStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	if err != nil {
		e.t.Fatalf("retry stream: %v", err)
	}
	return st.CachedInfo().State.LastSeq
}

// consumerInfo returns a consumer's info, nil when it does not exist.
func (e *env) consumerInfo(stream, name string) *jetstream.ConsumerInfo {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := e.js.Consumer(ctx, stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		e.t.Fatalf("consumer %s/%s: %v", stream, name, err)
	}
	return c.CachedInfo()
}

// lookup returns webhook id as the registry has it.
func (e *env) lookup(id string) subscriptions.Webhook {
	e.t.Helper()
	w, err := e.store.Lookup(context.Background(), id)
	if err != nil {
		e.t.Fatalf("Lookup(%s): %v", id, err)
	}
	return w
}

// setEnabled enables or disables w through the registry, as the API does.
func (e *env) setEnabled(w subscriptions.Webhook, on bool) {
	e.t.Helper()
	if _, err := e.store.Update(context.Background(), w.AccountID, w.ID, subscriptions.Patch{Enabled: &on}); err != nil {
		e.t.Fatalf("Update(enabled=%v): %v", on, err)
	}
}

// publishIDs publishes one small event per id on subject.
func (e *env) publishIDs(subject string, ids []string) []string {
	e.t.Helper()
	return e.publishBodies(subject, ids, eventBody)
}

// refusedURL is an endpoint on a loopback port nobody listens on: every
// connection is refused.
func refusedURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/hook"
}

// hookGauges keeps the peak number of concurrent requests per webhook.
type hookGauges struct {
	mu sync.Mutex
	m  map[string]*gauge
}

// enter counts one more request of webhook id; call the returned func
// when it ends.
func (h *hookGauges) enter(id string) (leave func()) {
	h.mu.Lock()
	if h.m == nil {
		h.m = map[string]*gauge{}
	}
	g := h.m[id]
	if g == nil {
		g = &gauge{}
		h.m[id] = g
	}
	h.mu.Unlock()
	return g.enter()
}

// peaks returns webhook id -> highest concurrency seen.
func (h *hookGauges) peaks() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.m))
	for id, g := range h.m {
		out[id] = int(g.peak.Load())
	}
	return out
}

// publishRoundRobin publishes one event about every interval from a
// goroutine, cycling over subjects, with ids prefix()-<i> (the prefix
// may change while it runs), until the returned func is called; that
// func returns the ids JetStream acknowledged.
func (e *env) publishRoundRobin(prefix func() string, subjects []string, interval time.Duration) func() []string {
	var (
		mu   sync.Mutex
		ids  []string
		done atomic.Bool
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !done.Load(); i++ {
			id := fmt.Sprintf("%s-%d", prefix(), i)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := e.js.Publish(ctx, subjects[i%len(subjects)], eventBody(id), jetstream.WithMsgID(id)); err == nil {
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
			cancel()
			time.Sleep(interval)
		}
	}()
	return func() []string {
		done.Store(true)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return ids
	}
}
