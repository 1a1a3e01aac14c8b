package subscriptions

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/webhookd/webhookd/test/harness"
)

// slotSince is the ActiveSince the slot script reads for webhook id.
func slotSince(tb testing.TB, s *Store, id string) time.Time {
	tb.Helper()
	ctx := context.Background()
	slot, err := s.AcquireSlot(ctx, id, "holder", 1, time.Second)
	if err != nil || !slot.Acquired {
		tb.Fatalf("AcquireSlot = %+v, %v; want acquired", slot, err)
	}
	if err := s.ReleaseSlot(ctx, id, "holder"); err != nil {
		tb.Fatal(err)
	}
	return slot.ActiveSince
}

// A re-enable's active_since is Redis's clock to the microsecond: it
// lies between a TIME read just before the re-enable and one just after,
// as the update's reply, Get and the slot script all read it. Before the
// fix it was kept in milliseconds, so in nearly every round it fell
// before the earlier TIME (the same millisecond, truncated), and an
// event stored in that millisecond before the re-enable was delivered.
// The millisecond field older replicas read is written too, consistent.
func TestActiveSinceKeepsMicroseconds(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("a", "hook", sentSMS))
	for round := range 20 {
		if _, err := s.Update(ctx, "a", w.ID, Patch{Enabled: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		before := harness.RedisNow(t, rdb)
		on, err := s.Update(ctx, "a", w.ID, Patch{Enabled: ptr(true)})
		if err != nil {
			t.Fatal(err)
		}
		after := harness.RedisNow(t, rdb)
		got, err := s.Get(ctx, "a", w.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			from string
			v    time.Time
		}{{"Update", on.ActiveSince}, {"Get", got.ActiveSince}, {"AcquireSlot", slotSince(t, s, w.ID)}} {
			if c.v.Before(before) || c.v.After(after) {
				t.Fatalf("round %d: %s ActiveSince %s, want within the re-enable's TIME reads [%s, %s]",
					round, c.from, c.v.Format(time.RFC3339Nano), before.Format(time.RFC3339Nano), after.Format(time.RFC3339Nano))
			}
		}
		ms, err := rdb.HGet(ctx, keyWebhook(w.ID), "active_since").Int64()
		if err != nil || ms != on.ActiveSince.UnixMilli() {
			t.Fatalf("round %d: active_since field = %d, %v; want %d (milliseconds, for older replicas)", round, ms, err, on.ActiveSince.UnixMilli())
		}
	}
}

// Records written before active_since kept microseconds have only the
// millisecond field; a microsecond field that disagrees with it was left
// by an earlier activation (an older replica re-enabled the webhook and
// wrote milliseconds only). Both read as the millisecond value, never
// 1000 times off, and never the stale microseconds.
func TestActiveSinceOldRecords(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("a", "hook", sentSMS))
	key := keyWebhook(w.ID)
	const ms = 1764000000123
	want := time.UnixMilli(ms).UTC()
	for _, tc := range []struct {
		name string
		us   string // "" = no microsecond field
	}{
		{"milliseconds only", ""},
		{"stale microseconds", strconv.Itoa(ms-5000) + "456"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb.HSet(ctx, key, "active_since", ms)
			if tc.us == "" {
				rdb.HDel(ctx, key, "active_since_us")
			} else {
				rdb.HSet(ctx, key, "active_since_us", tc.us)
			}
			got, err := s.Get(ctx, "a", w.ID)
			if err != nil {
				t.Fatal(err)
			}
			if slot := slotSince(t, s, w.ID); !got.ActiveSince.Equal(want) || !slot.Equal(want) {
				t.Errorf("ActiveSince: Get %v, AcquireSlot %v; want %v", got.ActiveSince, slot, want)
			}
		})
	}
	rdb.HSet(ctx, key, "active_since", ms, "active_since_us", strconv.Itoa(ms)+"456")
	if got, err := s.Get(ctx, "a", w.ID); err != nil || !got.ActiveSince.Equal(want.Add(456*time.Microsecond)) {
		t.Errorf("consistent fields: Get ActiveSince %v, %v; want %v", got.ActiveSince, err, want.Add(456*time.Microsecond))
	}
}
