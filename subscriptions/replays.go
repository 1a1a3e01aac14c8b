package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// ReplayState is where a replay is.
type ReplayState string

const (
	ReplayRunning   ReplayState = "running"
	ReplayDone      ReplayState = "done"
	ReplayCancelled ReplayState = "cancelled"
	ReplayFailed    ReplayState = "failed"
)

// Replay is a request to redeliver a webhook's events of a time window
// (the dispatcher's replay.go runs it). Its record lives in Redis so any
// replica can run it, and another can resume it from Checkpoint if that
// one dies.
type Replay struct {
	ID          string // UUIDv7
	WebhookID   string
	AccountID   string
	Since       time.Time
	Until       time.Time
	Topics      []string
	State       ReplayState
	Reason      string // failed: why
	EventsFound int64  // events of the window read from the stream so far
	EventsSent  int64  // of them, delivered (acknowledged by the endpoint)
	CreatedAt   time.Time
	FinishedAt  time.Time
	// Checkpoint is the last event stream sequence whose events were all
	// settled; a resumed replay starts after it (0: from Since).
	Checkpoint uint64
}

// ErrReplayNotFound: no replay with that id for that webhook.
var ErrReplayNotFound = errors.New("subscriptions: replay not found")

// Replay keys (rediskeys.go has the rest):
//
//	wh:{<id>}:replay:<rid>        HASH   one replay
//	wh:{<id>}:replay:<rid>:lease  STRING the replica running it (PX lease)
//	wh:{<id>}:replays             ZSET   replay ids -> created_at ms
//	wh:replays:running            SET    "<webhook id> <replay id>" of running replays
const keyReplaysRunning = "wh:replays:running"

func keyReplay(id, rid string) string      { return "wh:{" + id + "}:replay:" + rid }
func keyReplayLease(id, rid string) string { return keyReplay(id, rid) + ":lease" }
func keyReplays(id string) string          { return "wh:{" + id + "}:replays" }

// maxReplaysKept bounds a webhook's replay history; finished replays also
// expire after replayKeep.
const (
	maxReplaysKept = 50
	replayKeep     = 7 * 24 * time.Hour
)

// createReplayScript stores a new running replay and trims the history.
//
// KEYS: replay, replays, running
// ARGV: rid, member, keep, then field/value pairs
var createReplayScript = redis.NewScript(luaPrelude + `
local now = now_ms()
redis.call('HSET', KEYS[1], 'created_at', now, 'state', 'running')
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
local n = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if n > 0 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - 1) end
return redis.call('HGETALL', KEYS[1])
`)

// CreateReplay stores r as a new running replay and returns it with its
// id and created_at.
func (s *Store) CreateReplay(ctx context.Context, r Replay) (Replay, error) {
	rid, err := uuid.NewV7()
	if err != nil {
		return Replay{}, fmt.Errorf("subscriptions: create replay: %w", err)
	}
	r.ID = rid.String()
	topics, _ := json.Marshal(r.Topics)
	res, err := createReplayScript.Run(ctx, s.rdb,
		[]string{keyReplay(r.WebhookID, r.ID), keyReplays(r.WebhookID), keyReplaysRunning},
		r.ID, r.WebhookID+" "+r.ID, maxReplaysKept,
		"id", r.ID, "webhook_id", r.WebhookID, "account_id", r.AccountID,
		"since", r.Since.UnixNano(), "until", r.Until.UnixNano(), "topics", string(topics)).Slice()
	if err != nil {
		return Replay{}, fmt.Errorf("subscriptions: create replay %s: %w", r.WebhookID, err)
	}
	return decodeReplay(pairsToMap(res))
}

// GetReplay returns webhook id's replay rid.
func (s *Store) GetReplay(ctx context.Context, id, rid string) (Replay, error) {
	if rid == "" || strings.ContainsAny(rid, " :{}") {
		return Replay{}, ErrReplayNotFound
	}
	m, err := s.rdb.HGetAll(ctx, keyReplay(id, rid)).Result()
	if err != nil {
		return Replay{}, fmt.Errorf("subscriptions: get replay %s: %w", rid, err)
	}
	if m["webhook_id"] != id {
		return Replay{}, ErrReplayNotFound
	}
	return decodeReplay(m)
}

// ListReplays returns webhook id's replays, newest first.
func (s *Store) ListReplays(ctx context.Context, id string) ([]Replay, error) {
	rids, err := s.rdb.ZRevRange(ctx, keyReplays(id), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("subscriptions: list replays %s: %w", id, err)
	}
	out := make([]Replay, 0, len(rids))
	for _, rid := range rids {
		r, err := s.GetReplay(ctx, id, rid)
		if errors.Is(err, ErrReplayNotFound) {
			continue // expired
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// finishReplayScript ends a running replay once: the state moves from
// running to ARGV[1] only here, so one caller sees each end. With a
// holder (ARGV[4] non-empty) only the lease's holder may end it.
//
// KEYS: replay, lease, running
// ARGV: state, reason, member, holder, keep ms
// Reply: 1 ended now, 0 not running (or not the holder's).
var finishReplayScript = redis.NewScript(luaPrelude + `
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'reason', ARGV[2], 'finished_at', now_ms())
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[3])
return 1
`)

// CancelReplay cancels webhook id's replay rid if it is running (the
// replica running it stops at its next checkpoint) and returns it.
func (s *Store) CancelReplay(ctx context.Context, id, rid string) (Replay, error) {
	if _, err := s.GetReplay(ctx, id, rid); err != nil {
		return Replay{}, err
	}
	if _, err := s.finishReplay(ctx, id, rid, "", ReplayCancelled, ""); err != nil {
		return Replay{}, err
	}
	return s.GetReplay(ctx, id, rid)
}

// FinishReplay ends replay rid as state (done or failed, with reason)
// if holder still holds it; ended reports whether this call ended it, and
// only then is replay_finished reported to the notifier.
func (s *Store) FinishReplay(ctx context.Context, id, rid, holder string, state ReplayState, reason string) (bool, error) {
	ended, err := s.finishReplay(ctx, id, rid, holder, state, reason)
	if err != nil || !ended {
		return ended, err
	}
	if r, err := s.GetReplay(ctx, id, rid); err == nil && s.notify != nil {
		s.emit(Transition{Type: ReplayFinished, WebhookID: id, AccountID: r.AccountID, At: r.FinishedAt, Replay: &r})
	}
	return true, nil
}

func (s *Store) finishReplay(ctx context.Context, id, rid, holder string, state ReplayState, reason string) (bool, error) {
	n, err := finishReplayScript.Run(ctx, s.rdb,
		[]string{keyReplay(id, rid), keyReplayLease(id, rid), keyReplaysRunning},
		string(state), truncate(reason, maxErrorLen), id+" "+rid, holder, replayKeep.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("subscriptions: finish replay %s: %w", rid, err)
	}
	return n == 1, nil
}

// RunningReplay names a running replay.
type RunningReplay struct{ WebhookID, ReplayID string }

// RunningReplays lists every running replay (of every webhook).
func (s *Store) RunningReplays(ctx context.Context) ([]RunningReplay, error) {
	ms, err := s.rdb.SMembers(ctx, keyReplaysRunning).Result()
	if err != nil {
		return nil, fmt.Errorf("subscriptions: running replays: %w", err)
	}
	out := make([]RunningReplay, 0, len(ms))
	for _, m := range ms {
		if id, rid, ok := strings.Cut(m, " "); ok {
			out = append(out, RunningReplay{id, rid})
		}
	}
	return out, nil
}

// claimReplayScript takes or renews the lease of a running replay. A
// member of the running set whose replay is gone or ended is dropped.
//
// KEYS: replay, lease, running
// ARGV: holder, lease ms, member
// Reply: 1 held by holder, 0 held by another, -1 not running.
var claimReplayScript = redis.NewScript(luaPrelude + `
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  redis.call('SREM', KEYS[3], ARGV[3])
  return -1
end
local cur = redis.call('GET', KEYS[2])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
`)

// ClaimReplay takes (or renews) the lease on a running replay for
// holder. running is false when the replay ended (done, failed,
// cancelled): its runner must stop.
func (s *Store) ClaimReplay(ctx context.Context, id, rid, holder string, lease time.Duration) (held, running bool, err error) {
	n, err := claimReplayScript.Run(ctx, s.rdb,
		[]string{keyReplay(id, rid), keyReplayLease(id, rid), keyReplaysRunning},
		holder, lease.Milliseconds(), id+" "+rid).Int()
	if err != nil {
		return false, false, fmt.Errorf("subscriptions: claim replay %s: %w", rid, err)
	}
	return n == 1, n >= 0, nil
}

// releaseReplayScript gives a replay's lease up if holder holds it.
//
// KEYS: lease
// ARGV: holder
var releaseReplayScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`)

// ReleaseReplay gives up holder's lease on replay rid (a replica shutting
// down), so another replica resumes it from its checkpoint at once
// rather than after the lease. A lease held by another is left alone.
func (s *Store) ReleaseReplay(ctx context.Context, id, rid, holder string) error {
	if err := releaseReplayScript.Run(ctx, s.rdb, []string{keyReplayLease(id, rid)}, holder).Err(); err != nil {
		return fmt.Errorf("subscriptions: release replay %s: %w", rid, err)
	}
	return nil
}

// progressScript records a running replay's counters and checkpoint if
// holder holds it.
//
// KEYS: replay, lease
// ARGV: holder, found, sent, checkpoint
// Reply: 1 recorded, 0 not running or not the holder's.
var progressScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'events_found', ARGV[2], 'events_sent', ARGV[3], 'checkpoint', ARGV[4])
return 1
`)

// ReplayProgress records a running replay's counters and checkpoint;
// false means holder must stop (cancelled, or its lease was lost).
func (s *Store) ReplayProgress(ctx context.Context, r Replay, holder string) (bool, error) {
	n, err := progressScript.Run(ctx, s.rdb, []string{keyReplay(r.WebhookID, r.ID), keyReplayLease(r.WebhookID, r.ID)},
		holder, r.EventsFound, r.EventsSent, r.Checkpoint).Int()
	if err != nil {
		return false, fmt.Errorf("subscriptions: replay progress %s: %w", r.ID, err)
	}
	return n == 1, nil
}

func decodeReplay(m map[string]string) (Replay, error) {
	if m["id"] == "" {
		return Replay{}, ErrReplayNotFound
	}
	r := Replay{ID: m["id"], WebhookID: m["webhook_id"], AccountID: m["account_id"],
		State: ReplayState(m["state"]), Reason: m["reason"], Topics: []string{}}
	if t := m["topics"]; t != "" {
		if err := json.Unmarshal([]byte(t), &r.Topics); err != nil {
			return Replay{}, fmt.Errorf("subscriptions: replay %s: topics: %w", r.ID, err)
		}
	}
	nums := []struct {
		field string
		set   func(int64)
	}{
		{"since", func(v int64) { r.Since = time.Unix(0, v).UTC() }},
		{"until", func(v int64) { r.Until = time.Unix(0, v).UTC() }},
		{"created_at", func(v int64) { r.CreatedAt = msTime(v) }},
		{"finished_at", func(v int64) { r.FinishedAt = msTime(v) }},
		{"events_found", func(v int64) { r.EventsFound = v }},
		{"events_sent", func(v int64) { r.EventsSent = v }},
	}
	for _, f := range nums {
		v, err := parseInt(m, f.field)
		if err != nil {
			return Replay{}, fmt.Errorf("subscriptions: replay %s: %w", r.ID, err)
		}
		f.set(v)
	}
	if v := m["checkpoint"]; v != "" {
		cp, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return Replay{}, fmt.Errorf("subscriptions: replay %s: checkpoint: %w", r.ID, err)
		}
		r.Checkpoint = cp
	}
	return r, nil
}

// testSlotScript takes one of the webhook's request slots whatever its
// error state (a test send neither waits for the backoff nor probes), as
// long as fewer than max are in use: the in-flight cap holds with live
// traffic.
//
// KEYS: wh:{id}:slots
// ARGV: max, holder, lease ms
var testSlotScript = redis.NewScript(luaPrelude + luaSlotTTL + `
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
slot_ttl(KEYS[1], now)
return 1
`)

// AcquireFreeSlot takes a request slot for holder if fewer than max are
// in use, ignoring the error state and backoff (AcquireSlot honours
// them). Release it with ReleaseSlot.
func (s *Store) AcquireFreeSlot(ctx context.Context, id, holder string, max int, lease time.Duration) (bool, error) {
	if max < 1 || lease < time.Millisecond || holder == "" {
		return false, fmt.Errorf("subscriptions: acquire free slot: %w", ErrInvalid)
	}
	n, err := testSlotScript.Run(ctx, s.rdb, []string{keySlots(id)}, max, holder, lease.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("subscriptions: acquire free slot %s: %w", id, err)
	}
	return n == 1, nil
}
