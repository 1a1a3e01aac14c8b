package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Partition ownership keys (issue 14). The EVENTS stream maps every event
// to one of a fixed number of partitions by account, and each partition is
// consumed by one replica at a time, which holds its lease:
//
//	wp:replicas   ZSET   live replica ids -> last heartbeat (ms, Redis TIME)
//	wp:part:<p>   STRING the replica holding partition p's lease (PX ttl)
//
// The renew script touches several partition keys at once, so these keys
// share the registry's single-primary requirement (no Redis Cluster).
const keyReplicas = "wp:replicas"

func keyPartition(p int) string { return "wp:part:" + strconv.Itoa(p) }

// heartbeatScript records a replica alive and drops the ones not seen for
// ttl, on Redis's clock so that a replica with a skewed clock is neither
// dropped early nor kept too long.
//
// KEYS: wp:replicas
// ARGV: replica, ttl ms
// Reply: the live replica ids (in heartbeat order).
var heartbeatScript = redis.NewScript(luaPrelude + `
local now = now_ms()
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])))
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)

// claimScript takes a free lease, or refreshes the caller's own.
//
// KEYS: wp:part:<p>
// ARGV: replica, ttl ms
// Reply: 1 held by replica now, 0 held by another.
var claimScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// renewScript refreshes every lease the caller still holds among KEYS. A
// lease that expired and is still free is taken again: nobody else can
// have consumed the partition meanwhile, so continuing is safe and saves a
// hand-over after a short stall. A lease another replica took is lost.
//
// KEYS: wp:part:<p> for each partition asked about
// ARGV: replica, ttl ms
// Reply: the 1-based indexes into KEYS of the leases held now.
var renewScript = redis.NewScript(`
local kept = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if not cur or cur == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    kept[#kept + 1] = i
  end
end
return kept
`)

// releaseScript deletes a lease only if the caller holds it, so a late
// release never frees a partition another replica has taken since.
//
// KEYS: wp:part:<p>
// ARGV: replica
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

func checkLease(replica string, ttl time.Duration) error {
	if replica == "" || ttl < time.Millisecond {
		return fmt.Errorf("replica %q, ttl %v: %w", replica, ttl, ErrInvalid)
	}
	return nil
}

// Heartbeat records replica alive now (Redis's clock), drops every replica
// not seen for ttl, and returns the live replica ids sorted, replica
// included. Every replica sorts the same set the same way, so each can
// derive its share of the partitions and its rank from the reply alone.
func (s *Store) Heartbeat(ctx context.Context, replica string, ttl time.Duration) ([]string, error) {
	if err := checkLease(replica, ttl); err != nil {
		return nil, fmt.Errorf("subscriptions: heartbeat: %w", err)
	}
	ids, err := heartbeatScript.Run(ctx, s.rdb, []string{keyReplicas}, replica, ttl.Milliseconds()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("subscriptions: heartbeat %s: %w", replica, err)
	}
	slices.Sort(ids)
	return ids, nil
}

// ClaimPartition takes partition p's lease for replica for ttl if it is
// free. It reports true if replica holds the lease now, which includes a
// lease replica already held (refreshed for another ttl), and false if
// another replica holds it.
func (s *Store) ClaimPartition(ctx context.Context, p int, replica string, ttl time.Duration) (bool, error) {
	if err := errors.Join(checkLease(replica, ttl), checkPartition(p)); err != nil {
		return false, fmt.Errorf("subscriptions: claim partition: %w", err)
	}
	n, err := claimScript.Run(ctx, s.rdb, []string{keyPartition(p)}, replica, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("subscriptions: claim partition %d: %w", p, err)
	}
	return n == 1, nil
}

// RenewPartitions extends, in one script, every lease replica holds among
// ps for another ttl and returns the partitions it holds now, in the order
// of ps. A partition missing from kept was taken by another replica after
// its lease expired: the caller must stop consuming it at once. An expired
// lease nobody took is taken again and kept.
func (s *Store) RenewPartitions(ctx context.Context, replica string, ps []int, ttl time.Duration) ([]int, error) {
	if err := checkLease(replica, ttl); err != nil {
		return nil, fmt.Errorf("subscriptions: renew partitions: %w", err)
	}
	if len(ps) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ps))
	for i, p := range ps {
		if err := checkPartition(p); err != nil {
			return nil, fmt.Errorf("subscriptions: renew partitions: %w", err)
		}
		keys[i] = keyPartition(p)
	}
	idx, err := renewScript.Run(ctx, s.rdb, keys, replica, ttl.Milliseconds()).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("subscriptions: renew partitions %s: %w", replica, err)
	}
	kept := make([]int, 0, len(idx))
	for _, i := range idx {
		if i < 1 || int(i) > len(ps) {
			return nil, fmt.Errorf("subscriptions: renew partitions %s: unexpected reply %v", replica, idx)
		}
		kept = append(kept, ps[i-1])
	}
	return kept, nil
}

// ReleasePartition gives partition p's lease back if replica holds it.
// Releasing a lease replica does not hold is not an error, so a release
// after the lease was lost (or a retry) never frees another's partition.
func (s *Store) ReleasePartition(ctx context.Context, p int, replica string) error {
	if err := checkPartition(p); err != nil {
		return fmt.Errorf("subscriptions: release partition: %w", err)
	}
	if err := releaseScript.Run(ctx, s.rdb, []string{keyPartition(p)}, replica).Err(); err != nil {
		return fmt.Errorf("subscriptions: release partition %d: %w", p, err)
	}
	return nil
}

// Leave removes replica from the live replicas at once, so the others
// count it out on their next heartbeat instead of after ttl.
func (s *Store) Leave(ctx context.Context, replica string) error {
	if err := s.rdb.ZRem(ctx, keyReplicas, replica).Err(); err != nil {
		return fmt.Errorf("subscriptions: leave %s: %w", replica, err)
	}
	return nil
}

// PartitionOwners returns the replica holding each partition 0..n-1, ""
// for a free one, in one round trip. It is a snapshot for the owners'
// claim step, the delivery state, operators and tests; a lease can
// change hands right after it is read.
func (s *Store) PartitionOwners(ctx context.Context, n int) ([]string, error) {
	if n < 0 {
		return nil, fmt.Errorf("subscriptions: partition owners: n %d: %w", n, ErrInvalid)
	}
	if n == 0 {
		return []string{}, nil
	}
	keys := make([]string, n)
	for p := range keys {
		keys[p] = keyPartition(p)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("subscriptions: partition owners: %w", err)
	}
	owners := make([]string, n)
	for p, v := range vals {
		if id, ok := v.(string); ok {
			owners[p] = id
		}
	}
	return owners, nil
}

func checkPartition(p int) error {
	if p < 0 {
		return fmt.Errorf("partition %d: %w", p, ErrInvalid)
	}
	return nil
}
