package test

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 14, a failing webhook among many recovering ones. When a group of
// webhooks recovers at once (a shared receiver back after an outage),
// the retry keeper deletes their retry runners one after another in one
// tick (retrykeeper.go, tick → fleet.stop), and each stop waits for the
// runner's pending 2 s pull (runner.go, fetch with FetchMaxWait ignores
// the context), about 1 s per webhook. A webhook that starts failing
// during that tick gets no retry runner until the tick ends, so its
// events wait on its retry subject although its endpoint answers again.
//
// 60 webhooks fail and then recover together; once all their flags are
// cleared and the keeper has deleted 5 of their consumers, webhook X
// fails once (its first request only) and recovers. The test proves X's events arrive within
// 8 s (its backoff is at most 1 s; the keeper ticks every 100 ms).
func TestRetryRunnerStartsWhileOthersDrain(t *testing.T) {
	needPartitions(t)
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	group := NewSink(t, testSecret)
	var healthy atomic.Bool
	group.Respond = func(int64, *Request) int {
		if healthy.Load() {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	}
	var ids []string
	for i := range 60 {
		acct := "grp-" + strconv.Itoa(i)
		ids = append(ids, e.create(acct, group.URL, topicSMS).ID)
		e.publishIDs(topicSMS+"."+acct, idRange("g"+strconv.Itoa(i), 5))
	}
	xSink := NewSink(t, testSecret)
	xSink.Respond = func(n int64, _ *Request) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	x := e.create("x-acct", xSink.URL, topicSMS)
	for _, id := range ids {
		waitFor(t, 30*time.Second, "the group's rt_ consumers", func() bool { return e.consumerInfo(retryStream, "rt_"+id) != nil })
	}
	healthy.Store(true)
	waitFor(t, 30*time.Second, "the group's retrying flags cleared", func() bool {
		for _, id := range ids {
			if e.lookup(id).State.Retrying {
				return false
			}
		}
		return true
	})
	// The keeper's drop passes are under way once a few consumers are
	// gone (the first pass may hold only the first flags cleared).
	waitFor(t, 60*time.Second, "5 drained rt_ consumers deleted", func() bool {
		gone := 0
		for _, id := range ids {
			if e.consumerInfo(retryStream, "rt_"+id) == nil {
				gone++
			}
		}
		return gone >= 5
	})
	start := time.Now()
	xs := e.publishIDs(topicSMS+".x-acct", idRange("x", 20))
	if !poll(8*time.Second, func() bool { return len(hasPrefix(xSink.Delivered(), "x-")) == len(xs) }) {
		left := 0
		for _, id := range ids {
			if e.consumerInfo(retryStream, "rt_"+id) != nil {
				left++
			}
		}
		t.Errorf("webhook X's %d events not delivered 8s after it failed once (retrying=%v, rt_ consumer exists=%v, %d of the group's rt_ consumers still being deleted)",
			len(xs), e.lookup(x.ID).State.Retrying, e.consumerInfo(retryStream, "rt_"+x.ID) != nil, left)
	}
	waitDelivered(t, xSink, xs, 120*time.Second)
	t.Logf("webhook X's events delivered %v after its failure", time.Since(start).Round(time.Millisecond))
}
