package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// SlotPollInterval is the RetryAfter AcquireSlot returns when every slot
// is taken. Leases are released as soon as a request ends (usually well
// under a second), so a short poll finds a free slot quickly; the
// dispatcher adds jitter so pollers of one webhook do not move in step.
const SlotPollInterval = 25 * time.Millisecond

// Slot is the answer of AcquireSlot.
type Slot struct {
	// Acquired: the caller holds a lease and may send one request.
	Acquired bool
	// RetryAfter: not acquired; try again after this long. It is the time
	// to the webhook's next attempt while it is in error (backoff), or a
	// short poll interval when all slots are taken.
	RetryAfter time.Duration
	// Gone: the webhook is disabled or deleted; stop delivering.
	Gone bool
	// ActiveSince is, with Acquired, when the webhook's delivery last
	// (re)started, read in the same script: events stored before it must
	// not be sent (a re-enable delivers only new events), whatever a
	// replica's cached record says.
	ActiveSince time.Time
}

// luaSlotTTL keeps the slots key alive exactly as long as its longest
// lease, whatever lease length each holder asked for, so the key vanishes
// with its last lease and never cuts a longer one short.
const luaSlotTTL = `
local function slot_ttl(key, now)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then
    local ttl = tonumber(last[2]) - now
    if ttl < 1 then ttl = 1 end
    redis.call('PEXPIRE', key, ttl)
  end
end
`

// acquireScript is tech-notes §3.2 with the delivery gate in front.
//
// KEYS: wh:{id}:slots, wh:{id}
// ARGV: max, holder, lease ms, poll ms
// Reply: {1, 0, active_since ms, active_since_us} acquired, {0, retry
// ms} not acquired, {2, 0} gone. (The microseconds, 16 digits, are exact
// as a Lua number, and a reply number is sent as an integer.)
var acquireScript = redis.NewScript(luaPrelude + luaSlotTTL + `
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local h = redis.call('HMGET', KEYS[2], 'enabled', 'error_since', 'next_attempt_at', 'active_since', 'active_since_us')
if h[1] ~= '1' then return {2, 0} end
local limit = tonumber(ARGV[1])
if (tonumber(h[2]) or 0) > 0 then
  local nextAt = tonumber(h[3]) or 0
  if nextAt > now then return {0, nextAt - now} end
  limit = 1
end
if redis.call('ZSCORE', KEYS[1], ARGV[2]) or redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  slot_ttl(KEYS[1], now)
  return {1, 0, tonumber(h[4]) or 0, tonumber(h[5]) or 0}
end
return {0, tonumber(ARGV[4])}
`)

// extendScript renews a lease that has not expired yet, for a webhook
// that is still enabled.
//
// KEYS: wh:{id}:slots, wh:{id}
// ARGV: holder, lease ms
// Reply: 1 renewed, 0 expired or released, 2 the webhook is disabled or
// deleted.
var extendScript = redis.NewScript(luaPrelude + luaSlotTTL + `
if redis.call('HGET', KEYS[2], 'enabled') ~= '1' then return 2 end
local now = now_ms()
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) > now then
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
  slot_ttl(KEYS[1], now)
  return 1
end
return 0
`)

// countScript counts unexpired leases on Redis's clock.
var countScript = redis.NewScript(luaPrelude + `
return redis.call('ZCOUNT', KEYS[1], '(' .. now_ms(), '+inf')
`)

// AcquireSlot takes one of the webhook's request slots for holder, a
// unique id per request, with a lease that expires by itself if the holder
// dies. It is one Lua script on Redis's clock: expired leases are reaped;
// a disabled or deleted webhook is Gone; a webhook in error whose next
// attempt is in the future gets RetryAfter; a webhook in error allows one
// slot (the probe), a healthy one max.
//
// The script is idempotent for the same holder, so go-redis may retry it
// after a network error without booking a second slot. Pick the lease
// well above the longest request (the dispatcher bounds fetch, POST and
// ack together): a lease that runs out mid-request frees the slot early.
//
// Failover caveat: replication is asynchronous, so after a primary
// failover the newest leases may be missing on the new primary and up to
// max more requests may run for at most one lease time. The limit holds
// again once those leases would have expired.
func (s *Store) AcquireSlot(ctx context.Context, id, holder string, max int, lease time.Duration) (Slot, error) {
	if max < 1 || lease < time.Millisecond || holder == "" {
		return Slot{}, fmt.Errorf("subscriptions: acquire slot: max %d, lease %v, holder %q: %w", max, lease, holder, ErrInvalid)
	}
	res, err := acquireScript.Run(ctx, s.rdb, []string{keySlots(id), keyWebhook(id)},
		max, holder, lease.Milliseconds(), SlotPollInterval.Milliseconds()).Int64Slice()
	if err != nil {
		return Slot{}, fmt.Errorf("subscriptions: acquire slot %s: %w", id, err)
	}
	if len(res) < 2 {
		return Slot{}, fmt.Errorf("subscriptions: acquire slot %s: unexpected reply %v", id, res)
	}
	switch res[0] {
	case 1:
		s := Slot{Acquired: true}
		if len(res) > 3 {
			s.ActiveSince = activeTime(res[2], res[3])
		}
		return s, nil
	case 2:
		return Slot{Gone: true}, nil
	}
	return Slot{RetryAfter: time.Duration(res[1]) * time.Millisecond}, nil
}

// ErrWebhookGone: the webhook was disabled or deleted since its slot was
// taken (ExtendSlot).
var ErrWebhookGone = errors.New("subscriptions: webhook disabled or deleted")

// ExtendSlot renews holder's lease for another lease from now; false means
// it had already expired (or was released), and the caller no longer
// counts toward the limit. A webhook disabled or deleted since the slot
// was taken gets ErrWebhookGone, so that a request not yet sent is not
// sent after the disable.
func (s *Store) ExtendSlot(ctx context.Context, id, holder string, lease time.Duration) (bool, error) {
	if lease < time.Millisecond {
		return false, fmt.Errorf("subscriptions: extend slot: lease %v: %w", lease, ErrInvalid)
	}
	n, err := extendScript.Run(ctx, s.rdb, []string{keySlots(id), keyWebhook(id)}, holder, lease.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("subscriptions: extend slot %s: %w", id, err)
	}
	if n == 2 {
		return false, ErrWebhookGone
	}
	return n == 1, nil
}

// ReleaseSlot gives holder's slot back. Releasing an expired or unknown
// lease is not an error (ZREM is idempotent, so retries are safe).
func (s *Store) ReleaseSlot(ctx context.Context, id, holder string) error {
	if err := s.rdb.ZRem(ctx, keySlots(id), holder).Err(); err != nil {
		return fmt.Errorf("subscriptions: release slot %s: %w", id, err)
	}
	return nil
}

// SlotsInUse returns how many unexpired leases the webhook has.
func (s *Store) SlotsInUse(ctx context.Context, id string) (int, error) {
	n, err := countScript.Run(ctx, s.rdb, []string{keySlots(id)}).Int()
	if err != nil {
		return 0, fmt.Errorf("subscriptions: slots in use %s: %w", id, err)
	}
	return n, nil
}
