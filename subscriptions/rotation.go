package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Limits of a staged secret rotation.
const (
	// MinSecretLen and MaxSecretLen bound the secret of a rotation in
	// bytes. 16 is the minimum third-party sources quote for Klaviyo's
	// secret_key (reference §1); 256 bytes is far beyond any useful HMAC
	// key (SHA-256 hashes longer keys down to 32 bytes anyway) and keeps
	// the record small. Klaviyo's own create and PATCH keep their rules.
	MinSecretLen = 16
	MaxSecretLen = 256
	// DefaultOverlap is how long the previous secret keeps signing after
	// the new one is promoted, when the rotation does not say: a day, so
	// a receiver deployed once a day still catches the window.
	DefaultOverlap = 24 * time.Hour
	// MaxRotationWindow bounds retire_previous_at from now: two secrets
	// should not stay valid for longer than a month.
	MaxRotationWindow = 30 * 24 * time.Hour
	// maxRotationHistory is how many rotations a webhook remembers (the
	// GET list); older ones are dropped.
	maxRotationHistory = 20
)

// ErrRotationPending means the webhook already has a rotation whose
// previous secret has not retired yet; a second one would leave three
// secrets in play. Wait for retire_previous_at, or PATCH secret_key,
// which replaces every secret at once.
var ErrRotationPending = errors.New("subscriptions: a secret rotation is in progress")

// Rotation is a webhook's staged secret change: Secret (the new one)
// signs alongside the webhook's Secret (the previous one) from creation,
// becomes the primary at PromoteAt, and from RetireAt signs alone. The
// record keeps both secrets until the next rotation or PATCH of the
// secret compacts it; Webhook.Secrets decides by the clock, so no write
// is needed when a rotation moves on.
type Rotation struct {
	ID        string
	Secret    string // write-only, like Webhook.Secret; never logged
	CreatedAt time.Time
	PromoteAt time.Time
	RetireAt  time.Time
}

// RotationRecord is one rotation as the API lists it: its schedule and
// fate, never its secret.
type RotationRecord struct {
	ID          string    `json:"id"`
	CreatedAt   time.Time `json:"-"`
	PromoteAt   time.Time `json:"-"`
	RetireAt    time.Time `json:"-"`
	CancelledAt time.Time `json:"-"` // zero unless a PATCH of secret_key ended it early
}

// rotationJSON is RotationRecord as the record's history field holds it:
// unix milliseconds, which Lua can read and write back exactly.
type rotationJSON struct {
	ID          string `json:"id"`
	CreatedAt   int64  `json:"created_at"`
	PromoteAt   int64  `json:"promote_at"`
	RetireAt    int64  `json:"retire_at"`
	CancelledAt int64  `json:"cancelled_at,omitempty"`
}

// NewRotation is what Rotate needs. Zero times take the defaults on
// Redis's clock: PromoteAt now, RetireAt DefaultOverlap after PromoteAt.
type NewRotation struct {
	Secret    string
	PromoteAt time.Time
	RetireAt  time.Time
}

// PromoteSlack is how far in the past PromoteAt may lie and still be
// taken as now: a client that sends its own clock's now arrives a little
// later, and clocks drift.
const PromoteSlack = time.Minute

// RotationProblem is one faulty field of a NewRotation: Field is the
// API's attribute name (secret_key, promote_at, retire_previous_at).
type RotationProblem struct {
	Field, Message string
}

// Check validates nr against now, the rules every caller of Rotate
// applies (the API and the console): the secret's length, PromoteAt at
// most PromoteSlack in the past and within MaxRotationWindow, RetireAt
// in the future, after PromoteAt and within MaxRotationWindow. A
// PromoteAt in the past (within the slack) is cleared: promote now.
func (nr *NewRotation) Check(now time.Time) []RotationProblem {
	var out []RotationProblem
	if n := len(nr.Secret); n < MinSecretLen || n > MaxSecretLen {
		out = append(out, RotationProblem{"secret_key", fmt.Sprintf("secret_key must be %d to %d bytes long.", MinSecretLen, MaxSecretLen)})
	}
	promote := nr.PromoteAt
	if !promote.IsZero() && promote.Before(now.Add(-PromoteSlack)) {
		out = append(out, RotationProblem{"promote_at", "promote_at is in the past; omit it to promote now."})
		promote = time.Time{}
	}
	if promote.IsZero() || promote.Before(now) {
		promote, nr.PromoteAt = now, time.Time{}
	}
	if retire := nr.RetireAt; !retire.IsZero() {
		switch {
		case !retire.After(now):
			out = append(out, RotationProblem{"retire_previous_at", "retire_previous_at is in the past."})
		case !retire.After(promote):
			out = append(out, RotationProblem{"retire_previous_at", "retire_previous_at must be after promote_at."})
		case retire.Sub(now) > MaxRotationWindow:
			out = append(out, RotationProblem{"retire_previous_at", "retire_previous_at may be at most 30 days from now."})
		}
	}
	if promote.Sub(now) >= MaxRotationWindow {
		out = append(out, RotationProblem{"promote_at", "promote_at may be at most 30 days from now."})
	}
	return out
}

// Secrets returns the secrets that sign a request sent at now, primary
// first: the webhook's secret alone; during a rotation both, the
// previous one first until PromoteAt and the new one first from then;
// after RetireAt the new one alone.
func (w *Webhook) Secrets(now time.Time) []string {
	r := w.Rotation
	switch {
	case r == nil:
		return []string{w.Secret}
	case !now.Before(r.RetireAt):
		return []string{r.Secret}
	case now.Before(r.PromoteAt):
		return []string{w.Secret, r.Secret}
	}
	return []string{r.Secret, w.Secret}
}

// rotateScript starts a rotation. A finished rotation (now ≥ its
// retire time) is compacted first: its secret becomes the webhook's.
// One still in its window is refused. The change feed gets an "update"
// entry so every replica's index picks up the new secret; updated_at,
// part of Klaviyo's resource, stays.
//
// KEYS: wh:{id}, wh:rev, wh:epoch, wh:changes
// ARGV: id, account, rotation id, secret, promote ms (0: now), retire
// ms (0: promote + overlap), new epoch, history cap, overlap ms
var rotateScript = redis.NewScript(luaPrelude + `
local now = now_ms()
local cur = redis.call('HMGET', KEYS[1], 'account_id', 'rot_id', 'rot_secret', 'rot_retire_at', 'rotations')
if cur[1] ~= ARGV[2] then return {'notfound'} end
if cur[2] and cur[2] ~= '' then
  if (tonumber(cur[4]) or 0) > now then return {'pending'} end
  redis.call('HSET', KEYS[1], 'secret', cur[3])
end
local promote = tonumber(ARGV[5])
if promote < now then promote = now end
local retire = tonumber(ARGV[6])
if retire == 0 then retire = promote + tonumber(ARGV[9]) end
if retire <= promote then return {'invalid'} end
redis.call('HSET', KEYS[1], 'rot_id', ARGV[3], 'rot_secret', ARGV[4], 'rot_created_at', now,
  'rot_promote_at', promote, 'rot_retire_at', retire)
local hist = {}
if cur[5] and cur[5] ~= '' then hist = cjson.decode(cur[5]) end
table.insert(hist, 1, {id = ARGV[3], created_at = now, promote_at = promote, retire_at = retire})
while #hist > tonumber(ARGV[8]) do table.remove(hist) end
redis.call('HSET', KEYS[1], 'rotations', cjson.encode(hist))
registry_changed(registry_keys(2, ARGV[7]), ARGV[1], 'update')
return {'ok', redis.call('HGETALL', KEYS[1])}
`)

// Rotate starts a staged rotation of the secret of webhook id of
// account and returns the webhook with it (Webhook.Rotation). A webhook
// of another account is ErrNotFound; a rotation still in its window is
// ErrRotationPending. The caller validates the secret and times
// (NewRotation.Check); Rotate only refuses an
// empty secret or a retire time not after the promote time (ErrInvalid).
// A promote time in the past is taken as now.
func (s *Store) Rotate(ctx context.Context, account, id string, nr NewRotation) (Webhook, error) {
	if id == "" {
		return Webhook{}, ErrNotFound
	}
	if nr.Secret == "" {
		return Webhook{}, fmt.Errorf("secret is empty: %w", ErrInvalid)
	}
	if !nr.PromoteAt.IsZero() && !nr.RetireAt.IsZero() && !nr.RetireAt.After(nr.PromoteAt) {
		return Webhook{}, fmt.Errorf("retire time not after promote time: %w", ErrInvalid)
	}
	var promote, retire int64
	if !nr.PromoteAt.IsZero() {
		promote = nr.PromoteAt.UnixMilli()
	}
	if !nr.RetireAt.IsZero() {
		retire = nr.RetireAt.UnixMilli()
	}
	keys := append([]string{keyWebhook(id)}, registryKeys...)
	res, err := rotateScript.Run(ctx, s.rdb, keys, id, account, uuid.NewString(), nr.Secret,
		promote, retire, uuid.NewString(), maxRotationHistory, DefaultOverlap.Milliseconds()).Slice()
	if err != nil {
		return Webhook{}, fmt.Errorf("subscriptions: rotate %s: %w", id, err)
	}
	switch st, _ := res[0].(string); st {
	case "pending":
		return Webhook{}, ErrRotationPending
	case "invalid":
		return Webhook{}, fmt.Errorf("retire time not after promote time: %w", ErrInvalid)
	}
	return scriptWebhook("rotate", res)
}

// Rotations returns the rotations of webhook id of account, newest
// first (at most the last 20), without their secrets.
func (s *Store) Rotations(ctx context.Context, account, id string) ([]RotationRecord, error) {
	if id == "" {
		return nil, ErrNotFound
	}
	v, err := s.rdb.HMGet(ctx, keyWebhook(id), "account_id", "rotations").Result()
	if err != nil {
		return nil, fmt.Errorf("subscriptions: rotations %s: %w", id, err)
	}
	if a, _ := v[0].(string); a == "" || a != account {
		return nil, ErrNotFound
	}
	raw, _ := v[1].(string)
	return decodeRotations(id, raw)
}

// decodeRotations reads the history field.
func decodeRotations(id, raw string) ([]RotationRecord, error) {
	out := []RotationRecord{}
	if raw == "" || raw == "{}" { // cjson writes an empty table as {}; the script never stores one
		return out, nil
	}
	var hist []rotationJSON
	if err := json.Unmarshal([]byte(raw), &hist); err != nil {
		return nil, fmt.Errorf("subscriptions: webhook %s: rotations: %w", id, err)
	}
	for _, h := range hist {
		out = append(out, RotationRecord{ID: h.ID, CreatedAt: msTime(h.CreatedAt),
			PromoteAt: msTime(h.PromoteAt), RetireAt: msTime(h.RetireAt), CancelledAt: msTime(h.CancelledAt)})
	}
	return out, nil
}

// decodeRotation reads the rotation in progress from the record's
// hash, nil when there is none.
func decodeRotation(m map[string]string) (*Rotation, error) {
	if m["rot_id"] == "" {
		return nil, nil
	}
	r := &Rotation{ID: m["rot_id"], Secret: m["rot_secret"]}
	for _, f := range []struct {
		field string
		t     *time.Time
	}{{"rot_created_at", &r.CreatedAt}, {"rot_promote_at", &r.PromoteAt}, {"rot_retire_at", &r.RetireAt}} {
		v, err := parseInt(m, f.field)
		if err != nil {
			return nil, err
		}
		*f.t = msTime(v)
	}
	return r, nil
}

// endRotationLua ends the rotation in progress when the secret is
// replaced by a PATCH (updateScript): the rotation fields are cleared,
// and a rotation still in its window is marked cancelled in the
// history. It expects the script's key (KEYS[1]) and now.
const endRotationLua = `
local function end_rotation(key, now)
  local r = redis.call('HMGET', key, 'rot_id', 'rot_retire_at', 'rotations')
  if not r[1] or r[1] == '' then return end
  if (tonumber(r[2]) or 0) > now and r[3] and r[3] ~= '' then
    local hist = cjson.decode(r[3])
    for _, e in ipairs(hist) do
      if e.id == r[1] then e.cancelled_at = now end
    end
    redis.call('HSET', key, 'rotations', cjson.encode(hist))
  end
  redis.call('HSET', key, 'rot_id', '', 'rot_secret', '', 'rot_created_at', 0,
    'rot_promote_at', 0, 'rot_retire_at', 0)
end
`
