package subscriptions

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// TransitionType names a change of a webhook's delivery state that
// operators are told about (operator events). Each is decided inside the
// Redis script that makes the change, so exactly one caller, on one
// replica, sees it.
type TransitionType string

const (
	// Failing: the first failure after success (error_since set).
	Failing TransitionType = "failing"
	// Error50 and Error90: the webhook has spent half, then nine tenths,
	// of disable-after in error. A failure or the sweep that finds both
	// crossed at once reports both, error_50 first; a disable reports any
	// not yet reported before itself, so each comes once per episode.
	Error50 TransitionType = "error_50"
	Error90 TransitionType = "error_90"
	// Disabled: disabled after disable-after in error.
	Disabled TransitionType = "disabled"
	// Recovered: a success ended an error episode.
	Recovered TransitionType = "recovered"
	// ReplayFinished: a replay ended done or failed (a cancel is the
	// operator's own act, answered by the DELETE).
	ReplayFinished TransitionType = "replay_finished"
)

// Transition is one operator-visible change.
type Transition struct {
	Type       TransitionType
	WebhookID  string
	AccountID  string
	At         time.Time // on Redis's clock for state transitions
	ErrorSince time.Time // failing, error_50, error_90, disabled
	LastStatus int       // failing and later: the last failure's status (0 = none)
	LastError  string
	Reason     string  // disabled: disabled_reason
	Replay     *Replay // replay_finished
}

// Notifier receives transitions. It is called synchronously on the path
// that made the change (a delivery, the sweep, a replay), so it must not
// block: queue and return.
type Notifier func(Transition)

// SetNotifier makes s report every transition its scripts decide to fn
// (nil: none). Set it before the store is used.
func (s *Store) SetNotifier(fn Notifier) { s.notify = fn }

func (s *Store) emit(t Transition) {
	if s.notify != nil {
		s.notify(t)
	}
}

// Level bits a state script returns with its reply.
const (
	bitFailing = 1
	bitError50 = 2
	bitError90 = 4
)

// luaLevels computes the error-level bits crossed now: it is appended to
// the prelude of the scripts that can cross them. ops_level holds the
// highest level already reported in this episode (0, 50, 90); it is reset
// when a new episode starts (the failure script) or ends (success).
const luaLevels = `
local function cross_levels(key, since, now, after, lvl)
  local bits = 0
  local el = now - since
  if lvl < 50 and el * 2 >= after then bits = bits + 2; lvl = 50 end
  if lvl < 90 and el * 10 >= after * 9 then bits = bits + 4; lvl = 90 end
  if bits > 0 then redis.call('HSET', key, 'ops_level', lvl) end
  return bits
end
`

// levelScript reports the error levels one webhook in error crossed
// since it was last looked at (the sweep, for webhooks whose retries are
// parked far apart).
//
// KEYS: wh:{id}
// ARGV: after ms
// Reply: {bits, error_since ms, account, last_status, last_error}
var levelScript = redis.NewScript(luaPrelude + luaLevels + `
local h = redis.call('HMGET', KEYS[1], 'enabled', 'error_since', 'ops_level', 'account_id',
  'last_status', 'last_error')
local since = tonumber(h[2]) or 0
if h[1] ~= '1' or since == 0 then return {0, 0, '', 0, ''} end
local bits = cross_levels(KEYS[1], since, now_ms(), tonumber(ARGV[1]), tonumber(h[3]) or 0)
return {bits, since, h[4] or '', tonumber(h[5]) or 0, h[6] or ''}
`)

// NoteErrorLevels reports (to the notifier) error_50 and error_90 for
// every webhook in error that crossed them since the last call, on any
// replica. Every replica may call it; the script reports each crossing
// once.
func (s *Store) NoteErrorLevels(ctx context.Context, after time.Duration) error {
	if after <= 0 {
		return fmt.Errorf("subscriptions: note error levels: after %v: %w", after, ErrInvalid)
	}
	ids, err := expiredScript.Run(ctx, s.rdb, []string{keyErroring}, (after / 2).Milliseconds()).StringSlice()
	if err != nil {
		return fmt.Errorf("subscriptions: note error levels: %w", err)
	}
	for _, id := range ids {
		res, err := levelScript.Run(ctx, s.rdb, []string{keyWebhook(id)}, after.Milliseconds()).Slice()
		if err != nil {
			return fmt.Errorf("subscriptions: note error levels %s: %w", id, err)
		}
		if len(res) != 5 {
			continue
		}
		bits, _ := res[0].(int64)
		since, _ := res[1].(int64)
		account, _ := res[2].(string)
		status, _ := res[3].(int64)
		lastErr, _ := res[4].(string)
		s.emitLevels(bits, Transition{WebhookID: id, AccountID: account, ErrorSince: msTime(since),
			LastStatus: int(status), LastError: lastErr})
	}
	return nil
}

// emitLevels reports the transitions of bits, in order, each a copy of t
// with its type.
func (s *Store) emitLevels(bits int64, t Transition) {
	if t.At.IsZero() {
		t.At = time.Now()
	}
	for _, l := range []struct {
		bit int64
		typ TransitionType
	}{{bitFailing, Failing}, {bitError50, Error50}, {bitError90, Error90}} {
		if bits&l.bit != 0 {
			t.Type = l.typ
			s.emit(t)
		}
	}
}

// emitDisabled reports the disabled transition of t's webhook with the
// reason the script stored.
func (s *Store) emitDisabled(ctx context.Context, t Transition) {
	if s.notify == nil {
		return
	}
	t.Type, t.At = Disabled, time.Now()
	if r, err := s.rdb.HGet(ctx, keyWebhook(t.WebhookID), "disabled_reason").Result(); err == nil {
		t.Reason = r
	}
	s.emit(t)
}
