package test

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/test/harness"
)

// tally counts what a fault test published against what arrived.
type tally struct{ published, delivered, duplicated, lost int }

func count(ids []string, got map[string]int) tally {
	tl := tally{published: len(ids)}
	for _, id := range ids {
		switch n := got[id]; n {
		case 0:
			tl.lost++
		default:
			tl.delivered++
			tl.duplicated += n - 1
		}
	}
	return tl
}

func (tl tally) log(t *testing.T, name string) {
	t.Logf("%s: published %d, delivered %d, duplicated %d, lost %d", name, tl.published, tl.delivered, tl.duplicated, tl.lost)
	if tl.lost != 0 {
		t.Errorf("%s: %d events lost, want 0", name, tl.lost)
	}
}

// publishSlowly publishes n events over about d from a goroutine and
// returns the ids whose publish was acknowledged by JetStream.
func (e *env) publishSlowly(prefix string, n int, d time.Duration) func() []string {
	var (
		mu   sync.Mutex
		acks []string
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			id := prefix + "-" + strconv.Itoa(i)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if _, err := e.js.Publish(ctx, topicSMS, eventBody(id), jetstream.WithMsgID(id)); err == nil {
				mu.Lock()
				acks = append(acks, id)
				mu.Unlock()
			}
			cancel()
			time.Sleep(d / time.Duration(n))
		}
	}()
	return func() []string { wg.Wait(); mu.Lock(); defer mu.Unlock(); return acks }
}

// Two replicas deliver; one is killed with SIGKILL mid-batch. Every event
// arrives; duplicates are at most the killed replica's in-flight batches;
// its semaphore slots come back within one lease time.
func TestFaultReplicaCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	flags := []string{"--batch-max-events", "50", "--delivery-timeout", "1s", "--semaphore-lease", "4s"}
	p1 := e.startWebhookd(flags...)
	e.startWebhookd(flags...)
	sink := NewSink(t, testSecret)
	var afterKill atomic.Bool
	var afterKillInFlight gauge
	sink.Respond = func(int64, *Request) int {
		if afterKill.Load() {
			defer afterKillInFlight.enter()()
			// Held long enough that one replica's fetch loop fills all
			// ten slots even on a slow, loaded machine.
			time.Sleep(400 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		return http.StatusOK
	}
	w := e.create("default", sink.URL, topicSMS)
	ids := e.publish(topicSMS, "crash", 6000)
	waitFor(t, 30*time.Second, "deliveries under way", func() bool { return len(sink.Delivered()) >= 1000 })
	p1.signal(syscall.SIGKILL)
	<-p1.done
	time.Sleep(4*time.Second + 500*time.Millisecond) // one lease time: the killed replica's leases expire
	// A second wave after the lease time needs all 10 slots: if the killed
	// replica's slots had not come back, the peak would stay below 10.
	afterKill.Store(true)
	ids = append(ids, e.publish(topicSMS, "after-crash", 3000)...)
	waitDelivered(t, sink, ids, 90*time.Second)
	tl := count(ids, sink.Delivered())
	tl.log(t, "replica crash")
	if max := 10 * 50; tl.duplicated > max {
		t.Errorf("duplicated %d, want at most the killed replica's in-flight events (%d)", tl.duplicated, max)
	}
	if got := afterKillInFlight.peak.Load(); got != 10 {
		t.Errorf("peak concurrency after the kill = %d, want 10 (the killed replica's slots came back)", got)
	}
	n, err := e.store.SlotsInUse(context.Background(), w.ID)
	if err != nil || n > 10 {
		t.Errorf("SlotsInUse = %d, %v; want ≤ 10", n, err)
	}
}

// Redis (AOF on) stops and restarts while events flow: delivery pauses and
// resumes by itself, no webhook state is lost, webhookd keeps running.
func TestFaultRedisRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.redis.Stop()
	e.redis = harness.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	e.store = subscriptions.New(e.redis.Client(t), subscriptions.Config{})
	p := e.startWebhookd()
	sink := NewSink(t, testSecret)
	w := e.create("default", sink.URL, topicSMS)
	acked := e.publishSlowly("redis", 400, 4*time.Second)
	time.Sleep(1500 * time.Millisecond)
	e.redis.Stop()
	time.Sleep(2 * time.Second)
	e.redis.Start(t)
	ids := acked()
	waitDelivered(t, sink, ids, 60*time.Second)
	count(ids, sink.Delivered()).log(t, "redis restart")
	if p.exited() {
		t.Fatalf("webhookd exited during the Redis restart: %v", p.err)
	}
	got := e.get(w)
	if got.Name != w.Name || got.EndpointURL != w.EndpointURL || !got.Enabled || len(got.Topics) != 1 {
		t.Errorf("webhook after Redis restart = %+v, want it unchanged", got)
	}
}

// NATS restarts on its store while events flow: clients reconnect and
// nothing published with an ack is lost.
func TestFaultNATSRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	// StoreDir is the server's <store>/jetstream; a new server on the
	// same store is given the parent.
	dir := filepath.Dir(e.nats.StoreDir())
	p := e.startWebhookd()
	sink := NewSink(t, testSecret)
	e.create("default", sink.URL, topicSMS)
	acked := e.publishSlowly("nats", 400, 5*time.Second)
	time.Sleep(1500 * time.Millisecond)
	port := e.nats.Addr().(*net.TCPAddr).Port
	e.nats.Shutdown()
	e.nats.WaitForShutdown()
	time.Sleep(time.Second)
	e.nats = harness.NATSWithDir(t, dir, func(o *server.Options) { o.Port = port })
	ids := acked()
	waitDelivered(t, sink, ids, 60*time.Second)
	count(ids, sink.Delivered()).log(t, "nats restart")
	if p.exited() {
		t.Fatalf("webhookd exited during the NATS restart: %v", p.err)
	}
}

// A receiver failing half its requests (5xx, timeouts, resets)
// gets every event; retries are spaced by the backoff; the webhook is not
// disabled before disable-after.
func TestFaultFlappingEndpoint(t *testing.T) {
	t.Parallel()
	dur := 12 * time.Second
	if *soak {
		dur = 5 * time.Minute
	}
	// Short run: small batches, many requests. Soak: larger batches, or
	// the one-probe-at-a-time error state falls behind 100 events/s.
	batch := "20"
	if *soak {
		batch = "100"
	}
	e := newEnv(t, nil)
	e.startWebhookd("--delivery-timeout", "1s", "--batch-max-events", batch)
	sink := NewSink(t, testSecret)
	var mu sync.Mutex
	attempts := map[string][]time.Time{}
	sink.Respond = func(n int64, r *Request) int {
		mu.Lock()
		for _, ev := range r.Events {
			attempts[ev.ExternalID] = append(attempts[ev.ExternalID], r.At)
		}
		mu.Unlock()
		switch rand.IntN(8) {
		case 0:
			return http.StatusInternalServerError
		case 1:
			return http.StatusBadGateway
		case 2:
			time.Sleep(1500 * time.Millisecond) // past the delivery timeout
			return http.StatusOK
		case 3:
			return ResetConnection
		}
		return http.StatusOK
	}
	w := e.create("default", sink.URL, topicSMS)
	ids := e.publishSlowly("flap", int(dur/(10*time.Millisecond)), dur)()
	waitDelivered(t, sink, ids, 2*time.Minute+dur/2)
	count(ids, sink.Delivered()).log(t, "flapping endpoint")
	if !e.get(w).Enabled {
		t.Error("webhook disabled before disable-after (48h)")
	}
	// Retries of one event are at least 0.8 × backoff-base apart (jitter).
	mu.Lock()
	defer mu.Unlock()
	for id, ts := range attempts {
		for i := 1; i < len(ts); i++ {
			if gap := ts[i].Sub(ts[i-1]); gap < 160*time.Millisecond {
				t.Errorf("event %s retried after %v, want ≥ 0.8 × 200ms backoff", id, gap)
				return
			}
		}
	}
}

// SIGTERM during delivery: in-flight requests finish, the process exits
// within the delivery timeout plus a margin, and what was not sent is
// delivered by the next replica.
func TestFaultGracefulShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := e.startWebhookd("--delivery-timeout", "2s", "--batch-max-events", "20")
	sink := NewSink(t, testSecret)
	var slow atomic.Bool
	slow.Store(true)
	sink.Respond = func(int64, *Request) int {
		if slow.Load() {
			time.Sleep(time.Second)
		}
		return http.StatusOK
	}
	e.create("default", sink.URL, topicSMS)
	ids := e.publish(topicSMS, "term", 2000)
	waitFor(t, 20*time.Second, "requests in flight", func() bool { return len(sink.Requests()) >= 10 })
	took, err := p.stop(10 * time.Second)
	if err != nil {
		t.Fatalf("webhookd after SIGTERM: %v (after %v)", err, took)
	}
	if took > 2*time.Second+1500*time.Millisecond {
		t.Errorf("exit took %v, want ≤ delivery timeout (2s) + 1.5s", took)
	}
	t.Logf("graceful shutdown: exited %v after SIGTERM", took.Round(time.Millisecond))
	e.startWebhookd("--batch-max-events", "200")
	slow.Store(false)
	waitDelivered(t, sink, ids, 60*time.Second)
	count(ids, sink.Delivered()).log(t, "graceful shutdown")
	if strings.Contains(p.out.String(), testSecret) {
		t.Error("the webhook secret appears in webhookd's logs")
	}
}
