package subscriptions

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// createScript stores a new webhook with its indexes, checking the
// account's limit first. The account zset's score is created_at, bumped by
// 1 ms when two creates share a millisecond, so the order is strict.
//
// KEYS: wh:{id}, acct:{a}:webhooks, wh:all, wh:rev, wh:epoch, wh:changes
// ARGV: id, account, name, has_description, description, endpoint_url,
// secret, topics (JSON), max, topic key prefix, new epoch
var createScript = redis.NewScript(luaPrelude + `
local now, now_us = now_clock()
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[9]) then return {'limit'} end
local score = now
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] and tonumber(last[2]) >= score then score = tonumber(last[2]) + 1 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'account_id', ARGV[2], 'name', ARGV[3],
  'has_description', ARGV[4], 'description', ARGV[5], 'endpoint_url', ARGV[6],
  'secret', ARGV[7], 'topics', ARGV[8], 'enabled', '1',
  'created_at', now, 'updated_at', now, 'active_since', now, 'active_since_us', now_us,
  'error_since', 0, 'consecutive_failures', 0, 'next_attempt_at', 0)
redis.call('ZADD', KEYS[2], score, ARGV[1])
for _, t in ipairs(cjson.decode(ARGV[8])) do
  redis.call('SADD', ARGV[10] .. t, ARGV[1])
end
redis.call('SADD', KEYS[3], ARGV[1])
registry_changed(registry_keys(4, ARGV[11]), ARGV[1], 'create')
return {'ok', redis.call('HGETALL', KEYS[1])}
`)

// updateScript applies a patch. Hash fields that change are written;
// a new topic set moves the id between topic index sets; enabled
// transitions reset the delivery state; a new endpoint_url on a webhook in
// error allows a probe at once (see Update). updated_at and the change
// feed move only when something changed, wh:rev on every call. The
// feed's kind is "enable" or "disable" for an enabled transition, else
// "update".
//
// A new secret_key ends any staged rotation (end_rotation): PATCH
// replaces every secret at once, as Klaviyo's does.
//
// KEYS: wh:{id}, wh:erroring, wh:rev, wh:epoch, wh:changes
// ARGV: id, account, topic key prefix, enabled ("", "0", "1"),
// topics (JSON, "" = unchanged), new epoch, secret patched ("1" or
// ""), then field/value pairs.
var updateScript = redis.NewScript(luaPrelude + endRotationLua + `
local now, now_us = now_clock()
local id = ARGV[1]
local cur = redis.call('HMGET', KEYS[1], 'account_id', 'enabled', 'topics', 'error_since', 'rot_id')
if cur[1] ~= ARGV[2] then return {'notfound'} end
local changed, kind, new_endpoint = false, 'update', false
if ARGV[7] == '1' and cur[5] and cur[5] ~= '' then
  end_rotation(KEYS[1], now)
  changed = true
end
for i = 8, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    changed = true
    if ARGV[i] == 'endpoint_url' then new_endpoint = true end
  end
end
if new_endpoint and cur[2] == '1' and (tonumber(cur[4]) or 0) > 0 then
  redis.call('HSET', KEYS[1], 'next_attempt_at', 0, 'consecutive_failures', 0)
end
if ARGV[5] ~= '' and ARGV[5] ~= cur[3] then
  for _, t in ipairs(cjson.decode(cur[3] or '[]')) do
    redis.call('SREM', ARGV[3] .. t, id)
  end
  for _, t in ipairs(cjson.decode(ARGV[5])) do
    redis.call('SADD', ARGV[3] .. t, id)
  end
  redis.call('HSET', KEYS[1], 'topics', ARGV[5])
  changed = true
end
if ARGV[4] == '1' and cur[2] ~= '1' then
  redis.call('HSET', KEYS[1], 'enabled', '1', 'active_since', now, 'active_since_us', now_us,
    'error_since', 0, 'consecutive_failures', 0, 'next_attempt_at', 0,
    'last_status', 0, 'last_error', '', 'last_failure_at', 0,
    'disabled_at', 0, 'disabled_reason', '', 'retrying', 0)
  redis.call('ZREM', KEYS[2], id)
  changed, kind = true, 'enable'
elseif ARGV[4] == '0' and cur[2] == '1' then
  redis.call('HSET', KEYS[1], 'enabled', '0', 'disabled_at', now,
    'disabled_reason', 'disabled by user',
    'error_since', 0, 'consecutive_failures', 0, 'next_attempt_at', 0)
  redis.call('ZREM', KEYS[2], id)
  changed, kind = true, 'disable'
end
if changed then
  redis.call('HSET', KEYS[1], 'updated_at', now)
  registry_changed(registry_keys(3, ARGV[6]), id, kind)
else
  redis.call('INCR', KEYS[3])
end
return {'ok', redis.call('HGETALL', KEYS[1])}
`)

// deleteScript removes a webhook, its leases and every index entry.
//
// KEYS: wh:{id}, wh:{id}:slots, acct:{a}:webhooks, wh:all, wh:erroring,
// wh:rev, wh:epoch, wh:changes
// ARGV: id, account, topic key prefix, new epoch
var deleteScript = redis.NewScript(luaPrelude + `
local id = ARGV[1]
local cur = redis.call('HMGET', KEYS[1], 'account_id', 'topics')
if cur[1] ~= ARGV[2] then return 0 end
for _, t in ipairs(cjson.decode(cur[2] or '[]')) do
  redis.call('SREM', ARGV[3] .. t, id)
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], id)
redis.call('SREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
registry_changed(registry_keys(6, ARGV[4]), id, 'delete')
return 1
`)

// Create stores a new enabled webhook, atomically with the account and
// topic indexes, and returns it. Its id is a random UUID (no dots, so it
// can name a JetStream consumer). It returns ErrInvalid for an empty
// account, name, endpoint or secret, a *TopicError for a topic outside
// the account's catalog, and ErrLimit when the account is full.
func (s *Store) Create(ctx context.Context, nw NewWebhook) (Webhook, error) {
	for _, f := range []struct{ name, v string }{
		{"account_id", nw.AccountID}, {"name", nw.Name},
		{"endpoint_url", nw.EndpointURL}, {"secret", nw.Secret},
	} {
		if f.v == "" {
			return Webhook{}, fmt.Errorf("%s is empty: %w", f.name, ErrInvalid)
		}
	}
	topics, err := s.checkTopics(ctx, nw.AccountID, nw.Topics)
	if err != nil {
		return Webhook{}, err
	}
	hasDesc, desc := "0", ""
	if nw.Description != nil {
		hasDesc, desc = "1", *nw.Description
	}
	id := uuid.NewString()
	keys := append([]string{keyWebhook(id), keyAccount(nw.AccountID), keyAll}, registryKeys...)
	res, err := createScript.Run(ctx, s.rdb, keys, id, nw.AccountID, nw.Name, hasDesc, desc,
		nw.EndpointURL, nw.Secret, encodeTopics(topics), s.cfg.MaxWebhooksPerAccount,
		keyTopicPrefix(nw.AccountID), uuid.NewString()).Slice()
	if err != nil {
		return Webhook{}, fmt.Errorf("subscriptions: create: %w", err)
	}
	return scriptWebhook("create", res)
}

// Update applies p to the webhook id of account and returns the result.
// A webhook of another account is ErrNotFound. Setting Enabled from false
// to true restarts delivery (active_since = now) with a clean delivery
// state; from true to false records disabled_at and the reason "disabled
// by user". updated_at moves when a field actually changes.
//
// A new EndpointURL on an enabled webhook in error clears next_attempt_at
// and restarts the backoff escalation (consecutive_failures = 0), so the
// new URL gets its probe now instead of waiting out a backoff (up to an
// hour with the defaults) earned by the old one. error_since is kept:
// it is the clock of the 48 h disable rule, and resetting it would let a
// client postpone the disable forever by re-PATCHing the URL; a success
// at the new URL clears it as usual.
func (s *Store) Update(ctx context.Context, account, id string, p Patch) (Webhook, error) {
	if id == "" {
		return Webhook{}, ErrNotFound
	}
	var pairs []any
	for _, f := range []struct {
		name string
		v    *string
	}{{"name", p.Name}, {"endpoint_url", p.EndpointURL}, {"secret", p.Secret}} {
		if f.v == nil {
			continue
		}
		if *f.v == "" {
			return Webhook{}, fmt.Errorf("%s is empty: %w", f.name, ErrInvalid)
		}
		pairs = append(pairs, f.name, *f.v)
	}
	if p.SetDescription {
		if p.Description == nil {
			pairs = append(pairs, "has_description", "0", "description", "")
		} else {
			pairs = append(pairs, "has_description", "1", "description", *p.Description)
		}
	}
	topics := ""
	if p.Topics != nil {
		t, err := s.checkTopics(ctx, account, *p.Topics)
		if err != nil {
			return Webhook{}, err
		}
		topics = encodeTopics(t)
	}
	enabled := ""
	if p.Enabled != nil {
		enabled = boolArg(*p.Enabled)
	}
	secretPatched := ""
	if p.Secret != nil {
		secretPatched = "1"
	}
	args := append([]any{id, account, keyTopicPrefix(account), enabled, topics, uuid.NewString(), secretPatched}, pairs...)
	keys := append([]string{keyWebhook(id), keyErroring}, registryKeys...)
	res, err := updateScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return Webhook{}, fmt.Errorf("subscriptions: update %s: %w", id, err)
	}
	return scriptWebhook("update", res)
}

// Delete removes the webhook id of account, its leases and its index
// entries. A webhook of another account is ErrNotFound.
func (s *Store) Delete(ctx context.Context, account, id string) error {
	if id == "" {
		return ErrNotFound
	}
	keys := append([]string{keyWebhook(id), keySlots(id), keyAccount(account), keyAll, keyErroring}, registryKeys...)
	n, err := deleteScript.Run(ctx, s.rdb, keys, id, account, keyTopicPrefix(account), uuid.NewString()).Int()
	if err != nil {
		return fmt.Errorf("subscriptions: delete %s: %w", id, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// errIDCollision is a Create whose random id already exists; with UUIDv4
// it does not happen in practice.
var errIDCollision = errors.New("subscriptions: webhook id collision")

// scriptWebhook decodes the {status, HGETALL} reply of the create and
// update scripts.
func scriptWebhook(op string, res []any) (Webhook, error) {
	var status string
	if len(res) > 0 {
		status, _ = res[0].(string)
	}
	switch status {
	case "ok":
		if len(res) < 2 {
			break
		}
		fields, _ := res[1].([]any)
		return decodeWebhook(pairsToMap(fields))
	case "notfound":
		return Webhook{}, ErrNotFound
	case "limit":
		return Webhook{}, ErrLimit
	case "exists":
		return Webhook{}, errIDCollision
	}
	return Webhook{}, fmt.Errorf("subscriptions: %s: unexpected script reply %q", op, status)
}

// boolArg is a boolean as the hash stores it.
func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
