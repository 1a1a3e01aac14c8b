package subscriptions

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// retryingScript sets or clears the retrying flag and, when it changes,
// records a registry change so every replica's index learns it.
//
// KEYS: wh:{id}, wh:rev, wh:epoch, wh:changes
// ARGV: id, "1" or "0", new epoch
// Reply: 1 changed, 0 unchanged or no such webhook.
var retryingScript = redis.NewScript(luaPrelude + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local cur = redis.call('HGET', KEYS[1], 'retrying') or '0'
if cur == ARGV[2] then return 0 end
if ARGV[2] == '1' and redis.call('HGET', KEYS[1], 'enabled') ~= '1' then return 0 end
redis.call('HSET', KEYS[1], 'retrying', ARGV[2])
registry_changed(registry_keys(2, ARGV[3]), ARGV[1], 'update')
return 1
`)

// SetRetrying marks the webhook id as retrying (on) or not. Under
// partitioned consumption a webhook whose delivery failed has its events
// moved to a retry subject of its own, so that its backlog never holds
// back the other webhooks of its partition; while the flag is set every
// replica sends its new events there too, and one consumer per retrying
// webhook delivers them with the usual backoff. The flag is shared
// through the change feed (kind "update"); enabling a webhook clears it.
// It reports whether the flag changed; a disabled or deleted webhook is
// never set retrying.
func (s *Store) SetRetrying(ctx context.Context, id string, on bool) (bool, error) {
	v := "0"
	if on {
		v = "1"
	}
	keys := append([]string{keyWebhook(id)}, registryKeys...)
	n, err := retryingScript.Run(ctx, s.rdb, keys, id, v, uuid.NewString()).Int()
	if err != nil {
		return false, fmt.Errorf("subscriptions: set retrying %s: %w", id, err)
	}
	return n == 1, nil
}
