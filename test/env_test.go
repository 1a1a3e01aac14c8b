package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/subscriptions/flows"
	"github.com/webhookd/webhookd/test/harness"
)

const (
	topicSMS   = "event:klaviyo.sent_sms"
	topicClick = "event:klaviyo.clicked_sms"
	testSecret = "test-secret-0123456789"
	testKey    = "pk_test_0123456789abcdef"
)

// env is one private NATS and Redis pair with in-process dispatchers.
type env struct {
	t     testing.TB
	nats  *server.Server
	redis *harness.Redis
	store *subscriptions.Store
	js    jetstream.JetStream
	cfg   dispatcher.Config
	ds    []*dispatcher.Dispatcher
}

// newEnv starts the servers; mutate adjusts the dispatchers' config.
func newEnv(t testing.TB, mutate func(*dispatcher.Config)) *env {
	t.Helper()
	e := &env{t: t, nats: harness.NATS(t), redis: harness.StartRedis(t)}
	e.store = subscriptions.New(e.redis.Client(t), subscriptions.Config{})
	js, err := jetstream.New(harness.Connect(t, e.nats))
	if err != nil {
		t.Fatal(err)
	}
	e.js = js
	e.cfg = dispatcher.Config{
		AllowInsecureEndpoints: true,
		BatchLinger:            100 * time.Millisecond,
		BackoffBase:            100 * time.Millisecond,
		BackoffMax:             time.Second,
		ReconcileInterval:      100 * time.Millisecond,
		Partitions:             testPartitions(),
	}
	if mutate != nil {
		mutate(&e.cfg)
	}
	return e
}

// replicaConns are a replica's own NATS and Redis connections, closed
// when the test ends (after the replica: cleanups run last first).
func (e *env) replicaConns() (jetstream.JetStream, *redis.Client) {
	e.t.Helper()
	nc, err := nats.Connect(e.nats.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		e.t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: e.redis.Socket})
	e.t.Cleanup(func() {
		rdb.Close()
		nc.Close()
	})
	return js, rdb
}

// runUntilEnd runs run until the test ends, and fails the test if it
// returns an error (what names it).
func (e *env) runUntilEnd(what string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("%s: %v", what, err)
		}
	})
}

// startDispatcher starts one more replica with its own NATS and Redis
// connections, stopped (and drained) when the test ends.
func (e *env) startDispatcher() *dispatcher.Dispatcher {
	e.t.Helper()
	js, rdb := e.replicaConns()
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel).With().
		Int("replica", len(e.ds)).Timestamp().Logger()
	d, err := dispatcher.New(e.cfg, js, subscriptions.New(rdb, subscriptions.Config{}), log)
	if err != nil {
		e.t.Fatal(err)
	}
	e.runUntilEnd("dispatcher.Run", d.Run)
	e.ds = append(e.ds, d)
	// The stream exists once any replica created it.
	waitFor(e.t, 10*time.Second, "the event stream", func() bool {
		_, err := e.js.Stream(context.Background(), "EVENTS")
		return err == nil
	})
	return d
}

func (e *env) create(account, url string, topics ...string) subscriptions.Webhook {
	e.t.Helper()
	w, err := e.store.Create(context.Background(), subscriptions.NewWebhook{
		AccountID: account, Name: "test", EndpointURL: url, Secret: testSecret, Topics: topics,
	})
	if err != nil {
		e.t.Fatalf("Create: %v", err)
	}
	e.waitConsumer(w.ID, true)
	return w
}

// waitConsumer waits until the webhook's consumer exists (or is gone).
// Under partitioned consumption a webhook has none: a registry change
// reaches routing before any event published after it, so it waits only
// for a dispatcher to have made the partition consumers.
func (e *env) waitConsumer(id string, exists bool) {
	e.t.Helper()
	if n := testPartitions(); n > 0 {
		if exists {
			waitFor(e.t, 10*time.Second, "partition consumers", func() bool {
				_, err := e.js.Consumer(context.Background(), "EVENTS", "part_"+strconv.Itoa(n-1))
				return err == nil
			})
		}
		return
	}
	waitFor(e.t, 10*time.Second, "consumer of "+id, func() bool {
		_, err := e.js.Consumer(context.Background(), "EVENTS", "wh_"+id)
		return (err == nil) == exists
	})
}

// waitIdle waits until the webhook's consumer has nothing pending and
// nothing unacknowledged: every event it matched was delivered (the sink
// records a request before answering it, so before the ack). It is the
// positive marker that lets a test assert that an event never came.
func (e *env) waitIdle(id string) {
	e.t.Helper()
	if n := testPartitions(); n > 0 {
		e.waitPartitionsIdle(n, id)
		return
	}
	waitFor(e.t, 15*time.Second, "consumer of "+id+" idle", func() bool {
		c, err := e.js.Consumer(context.Background(), "EVENTS", "wh_"+id)
		if err != nil {
			return false
		}
		info := c.CachedInfo()
		return info.NumPending == 0 && info.NumAckPending == 0
	})
}

// waitNoneInFlight waits until the webhook holds no request slot. A
// disable does not recall a request that took its slot before it: that
// request may still reach the endpoint, after the disable. A test that
// asserts what a re-enable delivers waits for this before its endpoint
// starts accepting.
func (e *env) waitNoneInFlight(id string) {
	e.t.Helper()
	waitFor(e.t, 20*time.Second, "no request of "+id+" in flight", func() bool {
		n, err := e.store.SlotsInUse(context.Background(), id)
		return err == nil && n == 0
	})
}

// waitFilters waits until the webhook's consumer filters topic and no
// other topic: a topic change has reached the stream.
func (e *env) waitFilters(id, topic string) {
	e.t.Helper()
	if testPartitions() > 0 {
		return
	}
	waitFor(e.t, 10*time.Second, "consumer of "+id+" on "+topic+" only", func() bool {
		c, err := e.js.Consumer(context.Background(), "EVENTS", "wh_"+id)
		if err != nil {
			return false
		}
		fs := c.CachedInfo().Config.FilterSubjects
		for _, f := range fs {
			if f != topic && !strings.HasPrefix(f, topic+".") {
				return false
			}
		}
		return len(fs) > 0
	})
}

func (e *env) get(w subscriptions.Webhook) subscriptions.Webhook {
	e.t.Helper()
	got, err := e.store.Get(context.Background(), w.AccountID, w.ID)
	if err != nil {
		e.t.Fatalf("Get: %v", err)
	}
	return got
}

// eventBody is a small event in Get Event shape.
func eventBody(id string) []byte {
	return fmt.Appendf(nil, `{"data":{"type":"event","id":%q,"attributes":{"timestamp":1700503941,"event_properties":{"$value":9.99,"note":"<b>&amp;</b>"},"datetime":"2023-11-20 18:12:21+00:00","uuid":"58edf080-87d0-11ee-8001-895ec29a6280"}}}`, id)
}

// publish publishes n events on subject with ids prefix-0..n-1 and waits
// for every acknowledgement; it returns the ids.
func (e *env) publish(subject, prefix string, n int) []string {
	e.t.Helper()
	// Windows of acknowledgements keep PublishAsync from stalling on
	// its pending limit when the machine is busy (the whole suite runs
	// in parallel under -race).
	const window = 256
	ids := make([]string, n)
	futures := make([]jetstream.PubAckFuture, 0, window)
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		f, err := e.js.PublishAsync(subject, eventBody(ids[i]), jetstream.WithMsgID(ids[i]))
		if err != nil {
			e.t.Fatalf("PublishAsync: %v", err)
		}
		futures = append(futures, f)
		if len(futures) == window || i == n-1 {
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					e.t.Fatalf("publish: %v", err)
				case <-time.After(10 * time.Second):
					e.t.Fatal("publish: no ack")
				}
			}
			futures = futures[:0]
		}
	}
	return ids
}

// publishRaw publishes one message as-is.
func (e *env) publishRaw(subject string, body []byte, msgID string) {
	e.t.Helper()
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := e.js.Publish(context.Background(), subject, body, opts...); err != nil {
		e.t.Fatalf("Publish: %v", err)
	}
}

// waitDelivered waits until every id arrived at s at least once.
func waitDelivered(t testing.TB, s *Sink, ids []string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%d events delivered", len(ids)), func() bool {
		got := s.Delivered()
		for _, id := range ids {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
}

func hasPrefix(ids map[string]int, prefix string) []string {
	var out []string
	for id := range ids {
		if strings.HasPrefix(id, prefix) {
			out = append(out, id)
		}
	}
	return out
}

// apiServer serves the Webhooks API on the env's store with key testKey
// for account default.
func (e *env) apiServer() string {
	e.t.Helper()
	keys, err := subscriptions.ParseKeys([]string{testKey + "=default"})
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{AllowInsecureEndpoints: true, Flows: flows.NewStore(e.redis.Client(e.t))},
		e.store, keys, zerolog.Nop()))
	e.t.Cleanup(srv.Close)
	return srv.URL
}

// call sends one API request and decodes the JSON answer into out.
func call(t testing.TB, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Klaviyo-API-Key "+testKey)
	req.Header.Set("revision", "2026-07-15")
	req.Header.Set("Content-Type", "application/vnd.api+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decoding answer: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

// testPartitions is the consumption model the suite runs: serve's
// default, 16 partitions, unless WEBHOOKD_TEST_PARTITIONS says otherwise
// (0: one consumer per webhook); `make test` runs the suite both ways.
func testPartitions() int {
	n, err := strconv.Atoi(os.Getenv("WEBHOOKD_TEST_PARTITIONS"))
	if err != nil {
		return 16
	}
	return n
}

// waitPartitionsIdle is waitIdle under partitioned consumption: every
// partition consumer, and the webhook's retry consumer if it has one,
// has nothing pending and nothing unacknowledged.
func (e *env) waitPartitionsIdle(n int, id string) {
	e.t.Helper()
	idle := func(stream, name string) bool {
		c, err := e.js.Consumer(context.Background(), stream, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return stream == "EVENTS_RETRY"
		}
		if err != nil {
			return false
		}
		info := c.CachedInfo()
		return info.NumPending == 0 && info.NumAckPending == 0
	}
	waitFor(e.t, 15*time.Second, "partitions idle for "+id, func() bool {
		for k := range n {
			if !idle("EVENTS", "part_"+strconv.Itoa(k)) {
				return false
			}
		}
		return idle("EVENTS_RETRY", "rt_"+id)
	})
}

// consumerOf names the consumer that carries w's events: its own, or
// under partitioned consumption its account's partition consumer (the
// partition nats-server's partition() function picks: FNV-1a mod n).
func consumerOf(w subscriptions.Webhook) string {
	if n := testPartitions(); n > 0 {
		h := fnv.New32a()
		_, _ = h.Write([]byte(w.AccountID))
		return "part_" + strconv.Itoa(int(h.Sum32()%uint32(n)))
	}
	return "wh_" + w.ID
}
