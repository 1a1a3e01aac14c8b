package test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookd/webhookd/dispatcher"
)

// While a webhook is in error, two replicas together send it one probe at
// a time, spaced by the backoff, while its backlog waits in the stream;
// the first success clears the error and restores full concurrency.
func TestErrorStateSendsOneProbe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *dispatcher.Config) {
		c.BatchMaxEvents = 20
		c.BackoffBase = 200 * time.Millisecond
		c.BackoffMax = 400 * time.Millisecond
	})
	e.startDispatcher()
	e.startDispatcher()
	sink := NewSink(t, testSecret)
	var (
		healthy, measuring atomic.Bool
		inFlight           gauge
		probes             atomic.Int64
	)
	sink.Respond = func(int64, *Request) int {
		if measuring.Load() {
			defer inFlight.enter()()
			probes.Add(1)
		}
		time.Sleep(100 * time.Millisecond)
		if healthy.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	}
	w := e.create("default", sink.URL, topicSMS)
	ids := e.publish(topicSMS, "probe", 1000)

	// Requests already on their way when the first failure lands may
	// still fail; measure once they are done.
	waitFor(t, 10*time.Second, "the error state", func() bool { return !e.get(w).State.ErrorSince.IsZero() })
	time.Sleep(500 * time.Millisecond)
	measuring.Store(true)
	time.Sleep(3 * time.Second)
	measuring.Store(false)
	if got := inFlight.peak.Load(); got != 1 {
		t.Errorf("peak concurrent requests while in error = %d, want 1 (one probe)", got)
	}
	// Backoff 200–400 ms plus a 100 ms answer: a handful of probes in 3 s,
	// not a stream of 50 batches.
	if n := probes.Load(); n < 2 || n > 15 {
		t.Errorf("%d probes in 3s while in error, want between 2 and 15", n)
	}
	if got := len(sink.Delivered()); got != 0 {
		t.Fatalf("%d events delivered while the endpoint failed", got)
	}

	inFlight.peak.Store(0)
	measuring.Store(true)
	healthy.Store(true)
	waitDelivered(t, sink, ids, 30*time.Second)
	waitFor(t, 5*time.Second, "the error state cleared after a success", func() bool {
		return e.get(w).State.ErrorSince.IsZero()
	})
	if got := inFlight.peak.Load(); got < 5 {
		t.Errorf("peak concurrent requests after recovery = %d, want full concurrency back (≥ 5 of 10)", got)
	}
}
