package subscriptions

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// undeliverableScript sets or clears undeliverable_reason. A deleted
// webhook is left alone (no hash is recreated), and an unchanged reason
// costs one HGET and no write, so the dispatcher may call it on every
// attempt.
//
// KEYS: wh:{id}
// ARGV: reason ("" clears)
// Reply: 1 changed, 0 otherwise.
var undeliverableScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local cur = redis.call('HGET', KEYS[1], 'undeliverable_reason') or ''
if cur == ARGV[1] then return 0 end
if ARGV[1] == '' then
  redis.call('HDEL', KEYS[1], 'undeliverable_reason')
else
  redis.call('HSET', KEYS[1], 'undeliverable_reason', ARGV[1])
end
return 1
`)

// SetUndeliverable records why the webhook id cannot be delivered even
// though it may be enabled (its consumer cannot be created: a server
// limit, a bad account id, a registry the dispatcher refuses), or clears
// it with reason "". The reason is shown as undeliverable_reason in the
// API's delivery state, so a webhook is never enabled yet silently
// undeliverable; it is a short text for people, cut to 200 bytes, never a
// secret. A deleted webhook is a no-op, and so is an unchanged reason
// (one round trip, no write).
//
// It is delivery state, not a registry change: it moves neither the
// revision nor the change feed, so dispatchers do not react to their
// own reports. The store never clears it by itself, not even on disable
// or enable; the dispatcher that sets it clears it once the webhook's
// consumer works again.
func (s *Store) SetUndeliverable(ctx context.Context, id, reason string) error {
	if id == "" {
		return nil
	}
	err := undeliverableScript.Run(ctx, s.rdb, []string{keyWebhook(id)}, truncate(reason, maxErrorLen)).Err()
	if err != nil {
		return fmt.Errorf("subscriptions: set undeliverable %s: %w", id, err)
	}
	return nil
}
