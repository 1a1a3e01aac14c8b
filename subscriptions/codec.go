package subscriptions

import (
	"encoding/json"
	"fmt"
	"time"
)

// msTime converts unix milliseconds from a hash field to a time; 0 is the
// zero time (the field's "unset").
func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// activeTime is a webhook's active_since from its two hash fields: ms,
// unix milliseconds (every version writes it), and us, unix microseconds
// (written with it since the boundary of "only events stored after the
// re-enable" is kept to the microsecond; 0 if absent). us counts only
// when it lies in ms's millisecond: a record written before us existed
// has none, and one re-enabled by an older replica has a stale one from
// an earlier activation; both read as ms, never 1000 times off.
func activeTime(ms, us int64) time.Time {
	if us > 0 && us/1000 == ms {
		return time.UnixMicro(us).UTC()
	}
	return msTime(ms)
}

// decodeWebhook turns the wh:{id} hash into a Webhook. Fields missing from
// the hash (older records, or state never written) read as zero values.
func decodeWebhook(m map[string]string) (Webhook, error) {
	w := Webhook{
		ID:          m["id"],
		AccountID:   m["account_id"],
		Name:        m["name"],
		EndpointURL: m["endpoint_url"],
		Secret:      m["secret"],
		Enabled:     m["enabled"] == "1",
		Topics:      []string{},
	}
	if m["has_description"] == "1" {
		d := m["description"]
		w.Description = &d
	}
	if t := m["topics"]; t != "" {
		if err := json.Unmarshal([]byte(t), &w.Topics); err != nil {
			return Webhook{}, fmt.Errorf("subscriptions: webhook %s: topics: %w", w.ID, err)
		}
	}
	rot, err := decodeRotation(m)
	if err != nil {
		return Webhook{}, fmt.Errorf("subscriptions: webhook %s: %w", w.ID, err)
	}
	w.Rotation = rot
	w.State.LastError = m["last_error"]
	w.State.DisabledReason = m["disabled_reason"]
	w.State.LastAutoDisabledReason = m["last_auto_disabled_reason"]
	w.State.UndeliverableReason = m["undeliverable_reason"]
	w.State.Retrying = m["retrying"] == "1"

	var activeMs, activeUs int64
	ints := []struct {
		field string
		set   func(int64)
	}{
		{"created_at", func(v int64) { w.CreatedAt = msTime(v) }},
		{"updated_at", func(v int64) { w.UpdatedAt = msTime(v) }},
		{"active_since", func(v int64) { activeMs = v }},
		{"active_since_us", func(v int64) { activeUs = v }},
		{"error_since", func(v int64) { w.State.ErrorSince = msTime(v) }},
		{"consecutive_failures", func(v int64) { w.State.ConsecutiveFailures = int(v) }},
		{"last_status", func(v int64) { w.State.LastStatus = int(v) }},
		{"last_failure_at", func(v int64) { w.State.LastFailureAt = msTime(v) }},
		{"last_success_at", func(v int64) { w.State.LastSuccessAt = msTime(v) }},
		{"next_attempt_at", func(v int64) { w.State.NextAttemptAt = msTime(v) }},
		{"disabled_at", func(v int64) { w.State.DisabledAt = msTime(v) }},
		{"last_auto_disabled_at", func(v int64) { w.State.LastAutoDisabledAt = msTime(v) }},
	}
	for _, f := range ints {
		v, err := parseInt(m, f.field)
		if err != nil {
			return Webhook{}, fmt.Errorf("subscriptions: webhook %s: %w", w.ID, err)
		}
		f.set(v)
	}
	w.ActiveSince = activeTime(activeMs, activeUs)
	return w, nil
}

// pairsToMap turns the flat field/value array a script returns from
// HGETALL into a map.
func pairsToMap(vals []any) map[string]string {
	m := make(map[string]string, len(vals)/2)
	for i := 0; i+1 < len(vals); i += 2 {
		k, _ := vals[i].(string)
		v, _ := vals[i+1].(string)
		m[k] = v
	}
	return m
}

// encodeTopics stores a topic set as a JSON array. Go encodes, Lua only
// decodes (cjson would encode an empty table as {}).
func encodeTopics(topics []string) string {
	b, err := json.Marshal(topics)
	if err != nil {
		// []string always marshals.
		panic(err)
	}
	return string(b)
}
