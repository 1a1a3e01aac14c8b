package test

import (
	"context"
	"slices"
	"testing"
	"time"
)

// A topic seen on the stream joins its account's topic catalog (and only
// that account's), so a webhook can then subscribe to it and receive it.
func TestTopicSeenJoinsCatalog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	const custom = "event:klaviyo.custom_loyalty_points"
	has := func(account string) bool {
		ts, err := e.store.Topics(context.Background(), account)
		if err != nil {
			t.Fatalf("Topics(%s): %v", account, err)
		}
		return slices.Contains(ts, custom)
	}
	if has("acme") {
		t.Fatalf("%s in acme's catalog before any event", custom)
	}
	e.publish(custom+".acme", "early", 1)
	waitFor(t, 15*time.Second, custom+" in acme's catalog", func() bool { return has("acme") })
	if has("default") {
		t.Errorf("%s joined the default account's catalog; it was seen for acme only", custom)
	}

	sink := NewSink(t, testSecret)
	e.create("acme", sink.URL, custom)
	ids := e.publish(custom+".acme", "custom", 5)
	waitDelivered(t, sink, ids, 20*time.Second)
}
