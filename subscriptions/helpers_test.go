package subscriptions

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/webhookd/webhookd/test/harness"
)

// newStore starts a private redis-server and returns a Store on it with
// its client, for tests that inspect the keys directly.
func newStore(tb testing.TB, cfg Config) (*Store, *redis.Client) {
	tb.Helper()
	rdb := harness.StartRedis(tb).Client(tb)
	return New(rdb, cfg), rdb
}

// mustCreate creates a webhook or fails the test.
func mustCreate(tb testing.TB, s *Store, nw NewWebhook) Webhook {
	tb.Helper()
	w, err := s.Create(context.Background(), nw)
	if err != nil {
		tb.Fatalf("Create(%+v) = %v, want nil", nw.Name, err)
	}
	return w
}

// newHook is a valid NewWebhook for account with the given topics.
func newHook(account, name string, topics ...string) NewWebhook {
	return NewWebhook{
		AccountID:   account,
		Name:        name,
		EndpointURL: "https://example.com/hook",
		Secret:      "0123456789abcdef",
		Topics:      topics,
	}
}

func ptr[T any](v T) *T { return &v }
