package flows

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// acquireScript takes one of max leases of an action's semaphore, on
// Redis's clock so every replica agrees; expired leases (a crashed
// holder) are dropped first. The key lives as long as its last lease.
//
// KEYS: flow:slots:<action>; ARGV: max, holder, lease ms. Reply 1 or 0.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
`)

// Acquire takes a lease of action's concurrency semaphore for holder
// (unique per request), at most max at once across replicas; lease
// bounds how long a crashed holder keeps it.
func (s *Store) Acquire(ctx context.Context, action, holder string, max int, lease time.Duration) (bool, error) {
	n, err := acquireScript.Run(ctx, s.rdb, []string{keySlots(action)}, max, holder, lease.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("flows: acquire %s: %w", action, err)
	}
	return n == 1, nil
}

// Release gives holder's lease back.
func (s *Store) Release(ctx context.Context, action, holder string) error {
	if err := s.rdb.ZRem(ctx, keySlots(action), holder).Err(); err != nil {
		return fmt.Errorf("flows: release %s: %w", action, err)
	}
	return nil
}

// Counts of an action's deliveries, kept by delivery.
type Counts struct {
	Delivered int64 // triggering events delivered (a 2xx)
	Skipped   int64 // triggering events skipped (refused, or retries exhausted)
	Waiting   int64 // triggering events waiting to retry now
	Attempts  int64 // requests made
	Failed    int64 // requests that failed
}

// Count fields.
const (
	fieldDelivered = "delivered"
	fieldSkipped   = "skipped"
	fieldWaiting   = "waiting"
	fieldAttempts  = "attempts"
	fieldFailed    = "failed"
)

// Outcome is what one request did to its triggering event.
type Outcome int

const (
	Delivered      Outcome = iota // 2xx
	Skipped                       // refused, or the last retry failed
	WillRetry                     // failed; tried again later
	RetryDelivered                // a retry got a 2xx
	RetrySkipped                  // a retry was refused or was the last
	RetryAgain                    // a retry failed and will be tried again
)

// Record counts one request of action and its outcome.
func (s *Store) Record(ctx context.Context, action string, o Outcome) error {
	key := keyCounts(action)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, key, fieldAttempts, 1)
		switch o {
		case Delivered:
			p.HIncrBy(ctx, key, fieldDelivered, 1)
		case Skipped:
			p.HIncrBy(ctx, key, fieldSkipped, 1)
			p.HIncrBy(ctx, key, fieldFailed, 1)
		case WillRetry:
			p.HIncrBy(ctx, key, fieldWaiting, 1)
			p.HIncrBy(ctx, key, fieldFailed, 1)
		case RetryDelivered:
			p.HIncrBy(ctx, key, fieldWaiting, -1)
			p.HIncrBy(ctx, key, fieldDelivered, 1)
		case RetrySkipped:
			p.HIncrBy(ctx, key, fieldWaiting, -1)
			p.HIncrBy(ctx, key, fieldSkipped, 1)
			p.HIncrBy(ctx, key, fieldFailed, 1)
		case RetryAgain:
			p.HIncrBy(ctx, key, fieldFailed, 1)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("flows: record %s: %w", action, err)
	}
	return nil
}

// SkipUnsent counts a triggering event skipped before any request (its
// body did not render): a skip, no attempt.
func (s *Store) SkipUnsent(ctx context.Context, action string, retrying bool) error {
	key := keyCounts(action)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, key, fieldSkipped, 1)
		if retrying {
			p.HIncrBy(ctx, key, fieldWaiting, -1)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("flows: record %s: %w", action, err)
	}
	return nil
}

// Counts returns action's counters.
func (s *Store) Counts(ctx context.Context, action string) (Counts, error) {
	m, err := s.rdb.HGetAll(ctx, keyCounts(action)).Result()
	if err != nil {
		return Counts{}, fmt.Errorf("flows: counts %s: %w", action, err)
	}
	n := func(k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
	return Counts{Delivered: n(fieldDelivered), Skipped: n(fieldSkipped), Waiting: n(fieldWaiting),
		Attempts: n(fieldAttempts), Failed: n(fieldFailed)}, nil
}
