package subscriptions

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// The registry epoch is the identity of one registry dataset: a random id
// in wh:epoch, created by the first write to a registry that has none and
// never changed after. A Redis that restarts on an empty data directory,
// or a registry replaced by another dataset, has no epoch or a different
// one, so a dispatcher that recorded the epoch next to its consumers (in
// NATS) can tell "this registry is not the one my consumers were made
// from" and refuse to delete consumers instead of reading an empty
// registry as "every webhook was deleted". Every registry write script
// (Create, Update, Delete, and the disable of RecordFailure and
// DisableExpired) creates the epoch when it is missing, atomically with
// the write, so a registry written after it came back empty always has a
// new epoch by the time its first record is visible. A restored backup
// brings back the epoch it was taken with.

// ensureEpochScript sets the epoch if it is missing and returns it.
//
// KEYS: wh:epoch
// ARGV: new epoch
var ensureEpochScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
`)

// Epoch returns the registry's epoch, or "" when it has none: an empty
// registry (Redis restarted on an empty data directory, or never written)
// or one written only by a webhookd older than the epoch. It never
// creates one, so a caller checking whether the registry is the one it
// knows does not stamp an identity on an empty dataset.
func (s *Store) Epoch(ctx context.Context) (string, error) {
	e, err := s.rdb.Get(ctx, keyEpoch).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("subscriptions: epoch: %w", err)
	}
	return e, nil
}

// EnsureEpoch returns the registry's epoch, creating a new random one
// first (SET NX, so concurrent callers agree on one) when it has none.
// Call it when starting on a registry deliberately, e.g. the first start
// of a deployment; an empty registry gets a new epoch, which a dispatcher
// that recorded an older one must treat as a different registry.
func (s *Store) EnsureEpoch(ctx context.Context) (string, error) {
	e, err := ensureEpochScript.Run(ctx, s.rdb, []string{keyEpoch}, uuid.NewString()).Text()
	if err != nil {
		return "", fmt.Errorf("subscriptions: ensure epoch: %w", err)
	}
	return e, nil
}
