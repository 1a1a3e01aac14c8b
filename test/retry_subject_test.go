package test

import (
	"net/http"
	"testing"
	"time"

	"github.com/webhookd/webhookd/dispatcher"
)

// Issue 14, a failing webhook's backlog on its retry subject: the
// webhook's endpoint fails, its events (those published before it was
// flagged retrying and those published after) wait on its retry subject;
// then the endpoint recovers. The test proves every event arrives, the
// retrying flag clears and the rt_ consumer is deleted, and new events
// then go through the partition again (nothing more is written to the
// retry stream).
func TestRetrySubjectDrainsAfterRecovery(t *testing.T) {
	n := needPartitions(t)
	t.Parallel()
	e := newEnv(t, func(c *dispatcher.Config) { c.BatchMaxEvents = 50 })
	e.startDispatcher()
	sink, healthy := newFailingSink(t, http.StatusServiceUnavailable)
	acct := accountsIn("rec", 7, n, 1)[0]
	subject := topicSMS + "." + acct
	w := e.create(acct, sink.URL, topicSMS)

	ids := e.publishIDs(subject, idRange("first", 200))
	waitFor(t, 20*time.Second, "the webhook flagged retrying", func() bool { return e.lookup(w.ID).State.Retrying })
	waitFor(t, 20*time.Second, "200 events on the retry subject", func() bool { return e.retryHeld(w.ID) == 200 })
	// Flagged: new events are routed to the retry subject directly.
	ids = append(ids, e.publishIDs(subject, idRange("flagged", 200))...)
	waitFor(t, 20*time.Second, "400 events on the retry subject", func() bool { return e.retryHeld(w.ID) == 400 })
	// The keeper makes the consumer at its next tick (ReconcileInterval)
	// after the flag: the copies may all be stored before that.
	waitFor(t, 10*time.Second, "the rt_ consumer while the webhook is retrying", func() bool {
		return e.consumerInfo(retryStream, "rt_"+w.ID) != nil
	})
	if got := len(sink.Delivered()); got != 0 {
		t.Fatalf("%d events accepted by a failing endpoint", got)
	}

	healthy.Store(true)
	recovered := time.Now()
	waitDelivered(t, sink, ids, 30*time.Second)
	t.Logf("backlog of %d delivered %v after the endpoint recovered", len(ids), time.Since(recovered).Round(time.Millisecond))
	count(ids, sink.Delivered()).log(t, "recovered webhook")
	waitFor(t, 20*time.Second, "the retrying flag cleared", func() bool { return !e.lookup(w.ID).State.Retrying })
	t.Logf("retrying flag cleared %v after recovery", time.Since(recovered).Round(time.Millisecond))
	waitFor(t, 20*time.Second, "the rt_ consumer deleted", func() bool { return e.consumerInfo(retryStream, "rt_"+w.ID) == nil })
	t.Logf("rt_ consumer deleted %v after recovery", time.Since(recovered).Round(time.Millisecond))
	if held := e.retryHeld(w.ID); held != 0 {
		t.Errorf("retry subject holds %d events after the drain, want 0", held)
	}

	seq := e.retryLastSeq()
	more := e.publishIDs(subject, idRange("after", 200))
	waitDelivered(t, sink, more, 30*time.Second)
	e.waitIdle(w.ID)
	if got := e.retryLastSeq(); got != seq {
		t.Errorf("retry stream last sequence %d → %d: events of a recovered webhook were moved to its retry subject, want them through the partition", seq, got)
	}
	if e.lookup(w.ID).State.Retrying {
		t.Error("recovered webhook flagged retrying again")
	}
	count(append(ids, more...), sink.Delivered()).log(t, "recovered webhook, all events")
}

// Issue 14, re-enable under partitions: a webhook disabled while its
// events wait on its retry subject (by the API, or by the disable rule)
// has that subject purged and its rt_ consumer deleted; re-enabled, it
// receives only events published after. (TestDisableAfterAndReenable
// covers re-enable itself in both models; this proves the purge.)
func TestDisablePurgesRetrySubject(t *testing.T) {
	n := needPartitions(t)
	t.Parallel()
	cases := []struct {
		name string
		// disableAfter, when set, lets the disable rule disable the
		// webhook; otherwise the test disables it through the registry.
		disableAfter time.Duration
	}{
		{name: "disabled by the API"},
		{name: "disabled by the disable rule", disableAfter: 6 * time.Second},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *dispatcher.Config) {
				c.BatchMaxEvents = 50
				c.DisableAfter = tc.disableAfter
				c.BackoffMax = 300 * time.Millisecond
			})
			e.startDispatcher()
			sink, healthy := newFailingSink(t, http.StatusInternalServerError)
			acct := accountsIn("dis", 9+i, n, 1)[0]
			subject := topicSMS + "." + acct
			w := e.create(acct, sink.URL, topicSMS)

			e.publishIDs(subject, idRange("before", 300))
			if tc.disableAfter == 0 {
				waitFor(t, 20*time.Second, "300 events on the retry subject", func() bool { return e.retryHeld(w.ID) == 300 })
				waitFor(t, 10*time.Second, "the rt_ consumer", func() bool { return e.consumerInfo(retryStream, "rt_"+w.ID) != nil })
				e.setEnabled(w, false)
			} else {
				// The disable rule fires DisableAfter after the first
				// failure, whether or not all 300 have moved yet (on a
				// loaded machine they may not have: a fresh-clone CI run
				// timed out waiting for 300 here). What the purge needs
				// is events waiting on the retry subject, and its
				// consumer, when the rule fires.
				waitFor(t, 20*time.Second, "events on the retry subject and the rt_ consumer", func() bool {
					return e.retryHeld(w.ID) > 0 && e.consumerInfo(retryStream, "rt_"+w.ID) != nil
				})
			}
			waitFor(t, 20*time.Second, "the webhook disabled", func() bool { return !e.lookup(w.ID).Enabled })
			disabled := time.Now()
			waitFor(t, 20*time.Second, "the retry subject purged", func() bool { return e.retryHeld(w.ID) == 0 })
			waitFor(t, 20*time.Second, "the rt_ consumer deleted", func() bool { return e.consumerInfo(retryStream, "rt_"+w.ID) == nil })
			t.Logf("retry subject purged and consumer deleted %v after the disable", time.Since(disabled).Round(time.Millisecond))

			// Re-enabled at once: ActiveSince keeps microseconds, so
			// events stored in the re-enable's millisecond but before it
			// are not new.
			e.publishIDs(subject, idRange("while-disabled", 20))
			// A probe in flight at the disable may reach the sink after it
			// is healthy (a loaded run delivered 50 "before" events so).
			e.waitNoneInFlight(w.ID)
			healthy.Store(true)
			e.setEnabled(w, true)
			if e.lookup(w.ID).State.Retrying {
				t.Error("re-enabled webhook still flagged retrying")
			}
			after := e.publishIDs(subject, idRange("after", 20))
			waitDelivered(t, sink, after, 20*time.Second)
			e.waitIdle(w.ID)
			got := sink.Delivered()
			for _, prefix := range []string{"before", "while-disabled"} {
				if n := len(hasPrefix(got, prefix)); n != 0 {
					t.Errorf("%d %q events delivered after re-enable, want 0", n, prefix)
				}
			}
			if held := e.retryHeld(w.ID); held != 0 {
				t.Errorf("retry subject holds %d events after re-enable, want 0", held)
			}
		})
	}
}
