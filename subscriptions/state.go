package subscriptions

import (
	"context"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Backoff is the retry and disable policy RecordFailure applies. Zero
// fields take the defaults noted on each.
type Backoff struct {
	Base         time.Duration // first delay (default 1s)
	Max          time.Duration // cap (default 1h)
	DisableAfter time.Duration // continuous error time before disabling (default 48h)
	// Jitter multiplies the delay; callers pass a random factor in
	// [0.8, 1.2] so that retries of many webhooks spread out. Zero,
	// negative or NaN means 1 (no jitter).
	Jitter float64
}

// withDefaults fills the zero fields of b.
func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = time.Second
	}
	if b.Max <= 0 {
		b.Max = time.Hour
	}
	if b.DisableAfter <= 0 {
		b.DisableAfter = 48 * time.Hour
	}
	if !(b.Jitter > 0) || math.IsInf(b.Jitter, 0) {
		b.Jitter = 1
	}
	return b
}

// Failure describes one failed request.
type Failure struct {
	Status    int       // HTTP status, 0 when there was no response
	Error     string    // short classification: "status 503", "timeout", "connection refused"
	StartedAt time.Time // when the request started
}

// FailureResult is what RecordFailure decided.
type FailureResult struct {
	Delay      time.Duration // redeliver the batch after this long
	Failures   int           // consecutive failures (escalations) so far
	ErrorSince time.Time
	Disabled   bool // this failure crossed DisableAfter: the webhook is now disabled
	Gone       bool // the webhook was already disabled or deleted
}

// maxErrorLen bounds last_error (and so disabled_reason): it is a short
// classification for people, not a response body.
const maxErrorLen = 200

// failureScript is tech-notes §4.2 with escalation once per round and the
// backoff computed on Redis's clock. The exponent is capped at 40 so that
// Base·2^n stays a finite, exact double before the cap applies; the
// delay is rounded to whole milliseconds before it is stored. A failure
// that does not escalate never moves next_attempt_at earlier.
//
// KEYS: wh:{id}, wh:erroring, wh:rev, wh:epoch, wh:changes
// ARGV: id, status, error, started_at ms, base ms, max ms, jitter,
// disable_after ms, new epoch
// Reply: {outcome, delay ms, failures, error_since ms, level bits,
// account}; outcome 0 = retry, 1 = disabled now, -1 = gone. The level
// bits (transitions.go) say which operator transitions this failure
// made: the first failure of an episode, error_50, error_90.
var failureScript = redis.NewScript(luaPrelude + luaLevels + `
local now = now_ms()
local h = redis.call('HMGET', KEYS[1], 'enabled', 'error_since', 'consecutive_failures',
  'last_failure_at', 'next_attempt_at', 'ops_level', 'account_id')
if h[1] ~= '1' then return {-1, 0, 0, 0, 0, ''} end
local prevSince = tonumber(h[2]) or 0
local since = prevSince
local bits, lvl = 0, tonumber(h[6]) or 0
if since == 0 then since = now; bits = 1; lvl = 0; redis.call('HSET', KEYS[1], 'ops_level', 0) end
local failures = tonumber(h[3]) or 0
if prevSince == 0 then failures = 0 end
if failures == 0 or tonumber(ARGV[4]) >= (tonumber(h[4]) or 0) then
  failures = failures + 1
end
local exp = failures - 1
if exp > 40 then exp = 40 end
local delay = tonumber(ARGV[5]) * 2 ^ exp
if delay > tonumber(ARGV[6]) then delay = tonumber(ARGV[6]) end
delay = math.floor(delay * tonumber(ARGV[7]) + 0.5)
local nextAt = now + delay
local oldNext = tonumber(h[5]) or 0
if prevSince > 0 and oldNext > nextAt then nextAt = oldNext end
redis.call('HSET', KEYS[1], 'error_since', since, 'consecutive_failures', failures,
  'last_status', ARGV[2], 'last_error', ARGV[3], 'last_failure_at', now,
  'next_attempt_at', nextAt)
redis.call('ZADD', KEYS[2], 'NX', since, ARGV[1])
bits = bits + cross_levels(KEYS[1], since, now, tonumber(ARGV[8]), lvl)
if now - since >= tonumber(ARGV[8]) then
  disable(KEYS[1], KEYS[2], registry_keys(3, ARGV[9]), ARGV[1], now, since, ARGV[3])
  return {1, 0, failures, since, bits, h[7] or ''}
end
return {0, nextAt - now, failures, since, bits, h[7] or ''}
`)

// successScript clears the error state of an enabled webhook. A disabled
// or deleted webhook is left alone: a late success must not hide why it
// was disabled. last_status and last_error stay as history.
//
// KEYS: wh:{id}, wh:erroring
// ARGV: id
// Reply: {1, account} recovered, {0} otherwise.
var successScript = redis.NewScript(luaPrelude + `
local h = redis.call('HMGET', KEYS[1], 'enabled', 'error_since', 'account_id')
if h[1] ~= '1' then return {0} end
local now = now_ms()
if (tonumber(h[2]) or 0) > 0 then
  redis.call('HSET', KEYS[1], 'error_since', 0, 'consecutive_failures', 0,
    'next_attempt_at', 0, 'last_success_at', now, 'ops_level', 0)
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {1, h[3] or ''}
end
redis.call('HSET', KEYS[1], 'last_success_at', now)
return {0}
`)

// expiredScript lists the ids in error since before now - after.
//
// KEYS: wh:erroring
// ARGV: after ms
var expiredScript = redis.NewScript(luaPrelude + `
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms() - tonumber(ARGV[1]))
`)

// disableExpiredScript re-checks one candidate of expiredScript and
// disables it; entries of deleted, disabled or recovered webhooks are
// dropped from wh:erroring.
//
// KEYS: wh:{id}, wh:erroring, wh:rev, wh:epoch, wh:changes
// ARGV: id, after ms, new epoch
// Reply: {1, level bits, error_since ms, account, last_status, last_error}
// disabled, {0} otherwise.
var disableExpiredScript = redis.NewScript(luaPrelude + luaLevels + `
local now = now_ms()
local h = redis.call('HMGET', KEYS[1], 'enabled', 'error_since', 'last_error', 'ops_level',
  'account_id', 'last_status')
local since = tonumber(h[2]) or 0
if h[1] ~= '1' or since == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {0}
end
if now - since < tonumber(ARGV[2]) then return {0} end
local bits = cross_levels(KEYS[1], since, now, tonumber(ARGV[2]), tonumber(h[4]) or 0)
disable(KEYS[1], KEYS[2], registry_keys(3, ARGV[3]), ARGV[1], now, since, h[3])
return {1, bits, since, h[5] or '', tonumber(h[6]) or 0, h[3] or ''}
`)

// RecordFailure records a failed request atomically (one Lua script):
// sets error_since if healthy, stores the last status and error, and
// escalates the backoff once per round: failures of requests that started
// before the previous failure was recorded do not escalate again, so ten
// concurrent requests failing together count as one. It sets
// next_attempt_at = now + Delay, with Delay = min(Max, Base·2^(failures−1))
// × Jitter. When the webhook has been in error for longer than
// DisableAfter it is disabled (enabled=false, disabled_at,
// disabled_reason), which is a registry change (revision, change feed,
// epoch).
//
// StartedAt comes from the caller's clock and is compared with
// last_failure_at from Redis's clock; skew between them only matters when
// it approaches the time between rounds (at least Base).
func (s *Store) RecordFailure(ctx context.Context, id string, f Failure, b Backoff) (FailureResult, error) {
	b = b.withDefaults()
	keys := append([]string{keyWebhook(id), keyErroring}, registryKeys...)
	res, err := failureScript.Run(ctx, s.rdb, keys,
		id, f.Status, truncate(f.Error, maxErrorLen), f.StartedAt.UnixMilli(),
		b.Base.Milliseconds(), b.Max.Milliseconds(), b.Jitter, b.DisableAfter.Milliseconds(),
		uuid.NewString()).Slice()
	if err != nil {
		return FailureResult{}, fmt.Errorf("subscriptions: record failure %s: %w", id, err)
	}
	if len(res) != 6 {
		return FailureResult{}, fmt.Errorf("subscriptions: record failure %s: unexpected reply %v", id, res)
	}
	n := make([]int64, 5)
	for i := range n {
		n[i], _ = res[i].(int64)
	}
	if n[0] < 0 {
		return FailureResult{Gone: true}, nil
	}
	account, _ := res[5].(string)
	fr := FailureResult{
		Delay:      time.Duration(n[1]) * time.Millisecond,
		Failures:   int(n[2]),
		ErrorSince: msTime(n[3]),
		Disabled:   n[0] == 1,
	}
	t := Transition{WebhookID: id, AccountID: account, ErrorSince: fr.ErrorSince,
		LastStatus: f.Status, LastError: truncate(f.Error, maxErrorLen)}
	s.emitLevels(n[4], t)
	if fr.Disabled {
		s.emitDisabled(ctx, t)
	}
	return fr, nil
}

// RecordSuccess clears the error state; recovered reports whether the
// webhook was in error. It runs after every successful request, so it is
// one script round trip. A disabled or deleted webhook is left unchanged
// and reports false.
func (s *Store) RecordSuccess(ctx context.Context, id string) (recovered bool, err error) {
	res, err := successScript.Run(ctx, s.rdb, []string{keyWebhook(id), keyErroring}, id).Slice()
	if err != nil {
		return false, fmt.Errorf("subscriptions: record success %s: %w", id, err)
	}
	if n, _ := res[0].(int64); n != 1 || len(res) < 2 {
		return false, nil
	}
	account, _ := res[1].(string)
	s.emit(Transition{Type: Recovered, WebhookID: id, AccountID: account, At: time.Now()})
	return true, nil
}

// DisableExpired disables every webhook continuously in error for longer
// than after (the sweeper, for webhooks with no traffic left to fail) and
// returns their ids. Each candidate is re-checked in its own script, so a
// webhook that recovered or was changed meanwhile is left alone; the
// cost is one round trip per candidate, which is fine for a periodic
// sweep.
func (s *Store) DisableExpired(ctx context.Context, after time.Duration) ([]string, error) {
	if after <= 0 {
		return nil, fmt.Errorf("subscriptions: disable expired: after %v: %w", after, ErrInvalid)
	}
	ids, err := expiredScript.Run(ctx, s.rdb, []string{keyErroring}, after.Milliseconds()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("subscriptions: disable expired: %w", err)
	}
	var disabled []string
	for _, id := range ids {
		keys := append([]string{keyWebhook(id), keyErroring}, registryKeys...)
		res, err := disableExpiredScript.Run(ctx, s.rdb, keys, id, after.Milliseconds(), uuid.NewString()).Slice()
		if err != nil {
			return disabled, fmt.Errorf("subscriptions: disable expired %s: %w", id, err)
		}
		if n, _ := res[0].(int64); n == 1 && len(res) == 6 {
			disabled = append(disabled, id)
			bits, _ := res[1].(int64)
			since, _ := res[2].(int64)
			account, _ := res[3].(string)
			status, _ := res[4].(int64)
			lastErr, _ := res[5].(string)
			t := Transition{WebhookID: id, AccountID: account, ErrorSince: msTime(since),
				LastStatus: int(status), LastError: lastErr}
			s.emitLevels(bits, t)
			s.emitDisabled(ctx, t)
		}
	}
	return disabled, nil
}

// truncate shortens s to at most n bytes without splitting a rune.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
