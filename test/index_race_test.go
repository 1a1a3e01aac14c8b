package test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// Registry changes while events flow under partitioned consumption: the
// index follows the change feed (index.Run) while every partition batch
// reads the feed position (index.syncAfter). The test renames a webhook
// continuously while events stream over every partition and proves every
// event arrives; under -race it also proves the two never share memory
// unsynchronised (dispatcher/index.go stored the address of Run's cursor
// variable, which Run keeps overwriting, as the position syncAfter reads).
func TestRegistryChangesWhileEventsFlow(t *testing.T) {
	n := needPartitions(t)
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	sink := NewSink(t, testSecret)
	accounts := accountPerPartition("ch", n)
	subjects := make([]string, n)
	var ws []subscriptions.Webhook
	for k, acct := range accounts {
		ws = append(ws, e.create(acct, sink.URL, topicSMS))
		subjects[k] = topicSMS + "." + acct
	}
	stop := e.publishRoundRobin(func() string { return "ch" }, subjects, 2*time.Millisecond)
	deadline := time.Now().Add(4 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		w := ws[i%len(ws)]
		name := "renamed-" + strconv.Itoa(i)
		if _, err := e.store.Update(context.Background(), w.AccountID, w.ID, subscriptions.Patch{Name: &name}); err != nil {
			t.Fatalf("Update: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	ids := stop()
	waitDelivered(t, sink, ids, 60*time.Second)
	count(ids, sink.Delivered()).log(t, "registry changes while events flow")
}
