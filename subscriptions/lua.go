package subscriptions

import "strconv"

// luaPrelude is prepended to every script that needs the clock or the
// disable transition, so the scripts share one definition of each.
//
// now_ms reads Redis TIME: one clock for every webhookd replica. Writes
// after TIME are safe because scripts replicate by effects (the default
// since Redis 5, the only mode since 7.0). now_clock reads it once as
// both milliseconds (a number) and microseconds (a decimal string: 16
// digits, more than the 14 significant digits Lua keeps when it turns a
// number into a command argument).
//
// rfc3339 formats unix milliseconds as an RFC 3339 UTC time (the Redis Lua
// sandbox has no os.date); it is Howard Hinnant's civil_from_days.
//
// registry_changed records one registry change inside the script that
// makes it: wh:rev is bumped (the reconcilers' poll), the webhook id and
// the kind of change are appended to the wh:changes stream (the O(1)
// feed; XADD with '*' is allowed because scripts replicate by effects),
// and wh:epoch is created from the caller's fresh random id if the
// registry has none. Creating the epoch here rather than in a separate
// call means a registry that comes back empty and is then written gets a
// new epoch in the same atomic step as its first record, so no reader can
// see the new records under the old identity. reg is a table {rev,
// epoch, changes, new_epoch} built by registry_keys.
//
// disable turns a failing webhook off: enabled=0, disabled_at, a reason
// built from error_since and the last error (never the secret), out of
// wh:erroring, and a registry change so every replica's reconciler stops
// its consumer. It moves updated_at (the record changed) and copies the
// reason to last_auto_disabled_reason/_at, which a re-enable keeps. error_since and the last failure stay as history until
// the webhook is enabled again.
var luaPrelude = `
local changes_maxlen = ` + strconv.Itoa(changesMaxLen) + `

local function registry_keys(k, new_epoch)
  return {rev = KEYS[k], epoch = KEYS[k + 1], changes = KEYS[k + 2], new_epoch = new_epoch}
end

local function registry_changed(reg, id, kind)
  redis.call('INCR', reg.rev)
  redis.call('SET', reg.epoch, reg.new_epoch, 'NX')
  redis.call('XADD', reg.changes, 'MAXLEN', '~', changes_maxlen, '*', 'id', id, 'kind', kind)
end

local function now_clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), t[1] .. string.format('%06d', tonumber(t[2]))
end

local function now_ms()
  local ms = now_clock()
  return ms
end

local function rfc3339(ms)
  local s = math.floor(ms / 1000)
  local days = math.floor(s / 86400)
  local rem = s - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp + 3
  if mp >= 10 then m = mp - 9 end
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02dZ', y, m, d,
    math.floor(rem / 3600), math.floor((rem % 3600) / 60), rem % 60)
end

local function disable(key, erroring, reg, id, now, since, lasterr)
  local reason = 'endpoint failing since ' .. rfc3339(since) .. ' (last error: ' .. (lasterr or '') .. ')'
  redis.call('HSET', key, 'enabled', '0', 'disabled_at', now, 'next_attempt_at', 0,
    'disabled_reason', reason, 'updated_at', now,
    'last_auto_disabled_at', now, 'last_auto_disabled_reason', reason)
  redis.call('ZREM', erroring, id)
  registry_changed(reg, id, 'disable')
end
`
