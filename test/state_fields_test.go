package test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookd/webhookd/dispatcher"
)

// delivery-state shows what waits (backlog) and what runs now on every
// replica (in_flight), both back to 0 once delivered; after a recovery it
// keeps the last failure but says it is past (in_error false).
func TestDeliveryStateBacklogAndInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *dispatcher.Config) {
		c.MaxInFlight = 2
		c.BatchMaxEvents = 5
		c.DeliveryTimeout = 20 * time.Second
		c.Lease = dispatcher.MinLease(c.DeliveryTimeout, c.BatchLinger)
		c.DisableAfter = time.Minute
	})
	d := e.startDispatcher()
	e.startDispatcher()
	sink := NewSink(t, testSecret)
	release := make(chan struct{})
	var failNext atomic.Int64
	sink.Respond = func(int64, *Request) int {
		<-release
		if failNext.Add(-1) >= 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	w := e.create("default", sink.URL, topicSMS)
	base := e.apiServerFor(d, "default")
	ids := e.publish(topicSMS, "wait", 40)

	var st map[string]any
	waitFor(t, 20*time.Second, "in_flight 2 and a backlog", func() bool {
		st = deliveryState(t, base, w.ID)
		return st["in_flight"] == float64(2) && st["backlog"] != nil && st["backlog"].(float64) >= 30
	})
	close(release)
	waitDelivered(t, sink, ids, 30*time.Second)
	waitFor(t, 20*time.Second, "backlog and in_flight back to 0", func() bool {
		st = deliveryState(t, base, w.ID)
		return st["in_flight"] == float64(0) && st["backlog"] == float64(0)
	})
	if st["in_error"] != false || st["last_failure_at"] != nil {
		t.Errorf("healthy webhook: %v, want in_error false and no failure", st)
	}

	// Two failures, then a success: the failure stays as history.
	failNext.Store(2)
	more := e.publish(topicSMS, "recover", 1)
	waitDelivered(t, sink, more, 30*time.Second)
	// The sink counts the event as it answers, before webhookd records
	// the success: wait for the record (last_success_at was already set
	// by the first part).
	waitFor(t, 10*time.Second, "the recovery recorded", func() bool {
		st = deliveryState(t, base, w.ID)
		return st["last_failure_at"] != nil && st["in_error"] == false
	})
	if st["in_error"] != false || st["error_since"] != nil || st["last_status"] != float64(503) || st["consecutive_failures"] != float64(0) {
		t.Errorf("after recovery: %v, want in_error false, error_since null, the last failure's status kept", st)
	}
	lastFailure, _ := time.Parse(time.RFC3339Nano, st["last_failure_at"].(string))
	lastSuccess, _ := time.Parse(time.RFC3339Nano, st["last_success_at"].(string))
	if !lastSuccess.After(lastFailure) {
		t.Errorf("last_success_at %v not after last_failure_at %v", lastSuccess, lastFailure)
	}
}

// An auto-disable moves the webhook's updated_at, and its reason stays
// readable in delivery-state after a re-enable.
func TestAutoDisableBumpsUpdatedAtAndKeepsReason(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *dispatcher.Config) {
		c.DisableAfter = time.Second
		c.BackoffBase = 100 * time.Millisecond
		c.BackoffMax = 200 * time.Millisecond
	})
	d := e.startDispatcher()
	sink := NewSink(t, testSecret)
	sink.Respond = func(int64, *Request) int { return http.StatusInternalServerError }
	w := e.create("default", sink.URL, topicSMS)
	created := e.get(w).UpdatedAt
	e.publish(topicSMS, "doomed", 5)
	waitFor(t, 20*time.Second, "the webhook disabled", func() bool { return !e.get(w).Enabled })
	if got := e.get(w); !got.UpdatedAt.After(created) || !got.UpdatedAt.Equal(got.State.DisabledAt) {
		t.Errorf("after the auto-disable updated_at = %v (was %v, disabled_at %v), want it moved to disabled_at", got.UpdatedAt, created, got.State.DisabledAt)
	}
	e.setEnabled(w, true)
	base := e.apiServerFor(d, "default")
	st := deliveryState(t, base, w.ID+"/") // the trailing-slash form
	reason, _ := st["last_auto_disabled_reason"].(string)
	if st["enabled"] != true || st["disabled_reason"] != nil || st["last_auto_disabled_at"] == nil ||
		reason == "" || !strings.Contains(reason, "status 500") {
		t.Errorf("after re-enable: %v, want enabled, no disabled_reason, and the auto-disable's reason kept", st)
	}
}
