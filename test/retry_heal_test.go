package test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/webhookd/webhookd/dispatcher"
)

// Issue 14, a retry consumer lost while its webhook is retrying (a NATS
// server back without that consumer, an operator deleting it): the
// webhook's retry runner finds it gone, the keeper makes it again, and
// every event that waited on the retry subject is delivered once the
// endpoint recovers.
func TestRetryConsumerHealed(t *testing.T) {
	n := needPartitions(t)
	t.Parallel()
	e := newEnv(t, func(c *dispatcher.Config) { c.BatchMaxEvents = 50 })
	e.startDispatcher()
	sink, healthy := newFailingSink(t, http.StatusServiceUnavailable)
	acct := accountsIn("heal", 5, n, 1)[0]
	subject := topicSMS + "." + acct
	w := e.create(acct, sink.URL, topicSMS)

	ids := e.publishIDs(subject, idRange("held", 200))
	waitFor(t, 20*time.Second, "200 events on the retry subject", func() bool { return e.retryHeld(w.ID) == 200 })
	waitFor(t, 20*time.Second, "the rt_ consumer", func() bool { return e.consumerInfo(retryStream, "rt_"+w.ID) != nil })
	before := e.consumerInfo(retryStream, "rt_"+w.ID).Created
	if err := e.js.DeleteConsumer(context.Background(), retryStream, "rt_"+w.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the rt_ consumer made again", func() bool {
		info := e.consumerInfo(retryStream, "rt_"+w.ID)
		return info != nil && info.Created.After(before)
	})
	if held := e.retryHeld(w.ID); held != 200 {
		t.Errorf("retry subject holds %d events after its consumer was lost, want 200", held)
	}
	healthy.Store(true)
	waitDelivered(t, sink, ids, 30*time.Second)
	count(ids, sink.Delivered()).log(t, "webhook whose retry consumer was lost")
	waitFor(t, 20*time.Second, "the retrying flag cleared", func() bool { return !e.lookup(w.ID).State.Retrying })
}
