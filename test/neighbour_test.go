package test

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/subscriptions"
)

// Issue 14, the dead-neighbour scenario, at 10,000 webhooks: a webhook
// whose endpoint refuses everything shares a partition with a healthy
// webhook, among idleWebhooks others (a thousand accounts of ten, none
// of which gets an event). The healthy
// webhook's backlog is delivered first alone, then with the dead one's
// events interleaved in the same partition; the test proves the second
// takes at most twice the first plus 3 s, that the dead webhook's events
// all wait on its retry subject (its rt_ consumer exists) and that none
// stays unacknowledged on the partition.
func TestDeadNeighbourDoesNotSlowItsPartition(t *testing.T) {
	n := needPartitions(t)
	t.Parallel()
	const backlog = 2000
	const idleWebhooks = 10_000
	cases := []struct {
		name string
		// shared: the dead webhook subscribes to the healthy one's
		// account and topic, so every event fans out to both; otherwise
		// it is another account of the same partition.
		shared bool
		// refused: nothing listens at the dead endpoint; otherwise it
		// answers 500.
		refused bool
	}{
		{name: "same account, shared events, 500", shared: true},
		{name: "other account of the partition, connection refused", refused: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *dispatcher.Config) { c.BatchMaxEvents = 50 })
			e.createIdle(idleWebhooks)
			e.startDispatcher()
			k := 3 + i // any partition
			accts := accountsIn("nb"+strconv.Itoa(i), k, n, 2)
			healthySink := NewSink(t, testSecret)
			healthy := e.create(accts[0], healthySink.URL, topicSMS)
			hSubject := topicSMS + "." + accts[0]

			start := time.Now()
			alone := e.publishIDs(hSubject, idRange("alone", backlog))
			waitDelivered(t, healthySink, alone, 60*time.Second)
			tookAlone := time.Since(start)

			deadURL := refusedURL(t)
			if !tc.refused {
				deadSink := NewSink(t, testSecret)
				deadSink.Respond = func(int64, *Request) int { return http.StatusInternalServerError }
				deadURL = deadSink.URL
			}
			dAcct, dSubject := accts[1], topicSMS+"."+accts[1]
			if tc.shared {
				dAcct, dSubject = accts[0], hSubject
			}
			dead := e.create(dAcct, deadURL, topicSMS)

			// The dead webhook's events come first in every chunk of the
			// partition; shared events go to both.
			start = time.Now()
			var with []string
			deadCount := 0
			for c := range backlog / 200 {
				if !tc.shared {
					e.publishIDs(dSubject, idRange("dead"+strconv.Itoa(c), 200))
					deadCount += 200
				}
				with = append(with, e.publishIDs(hSubject, idRange("with"+strconv.Itoa(c), 200))...)
			}
			if tc.shared {
				deadCount = len(with)
			}
			waitDelivered(t, healthySink, with, 60*time.Second)
			tookWith := time.Since(start)
			t.Logf("healthy webhook's %d events: alone %v, with a dead neighbour (%d events) %v",
				backlog, tookAlone.Round(time.Millisecond), deadCount, tookWith.Round(time.Millisecond))
			if limit := 2*tookAlone + 3*time.Second; tookWith > limit {
				t.Errorf("with a dead neighbour the healthy webhook took %v, want ≤ 2 × alone (%v) + 3s = %v", tookWith, tookAlone, limit)
			}
			count(with, healthySink.Delivered()).log(t, "healthy webhook")

			held := uint64(0)
			if !poll(30*time.Second, func() bool { held = e.retryHeld(dead.ID); return held >= uint64(deadCount) }) {
				t.Fatalf("retry subject of the dead webhook holds %d events, want %d", held, deadCount)
			}
			waitFor(t, 15*time.Second, "the dead webhook's rt_ consumer", func() bool {
				return e.consumerInfo(retryStream, "rt_"+dead.ID) != nil
			})
			part := "part_" + strconv.Itoa(k)
			waitFor(t, 30*time.Second, part+" with nothing pending or unacknowledged", func() bool {
				info := e.consumerInfo("EVENTS", part)
				return info != nil && info.NumPending == 0 && info.NumAckPending == 0
			})
			if held = e.retryHeld(dead.ID); held != uint64(deadCount) {
				t.Errorf("retry subject of the dead webhook holds %d events, want exactly %d (diverts deduplicated)", held, deadCount)
			}
			if !e.lookup(dead.ID).State.Retrying {
				t.Error("dead webhook not flagged retrying")
			}
			if e.lookup(healthy.ID).State.Retrying {
				t.Error("healthy webhook flagged retrying")
			}
		})
	}
}

// createIdle makes n webhooks, ten per account on accounts idle<i>,
// straight in the registry (no consumer wait: start the dispatcher
// after), each subscribed to a topic nobody publishes on here.
func (e *env) createIdle(n int) {
	e.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				_, err := e.store.Create(context.Background(), subscriptions.NewWebhook{
					AccountID: "idle" + strconv.Itoa(i/10), Name: "idle", EndpointURL: "http://127.0.0.1:9/idle",
					Secret: testSecret, Topics: []string{topicSMS},
				})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		e.t.Fatalf("creating %d idle webhooks: %v", n, err)
	default:
	}
	if all, err := e.store.All(context.Background()); err != nil || len(all) < n {
		e.t.Fatalf("registry holds %d webhooks (%v), want at least %d", len(all), err, n)
	}
}
