package subscriptions

import (
	"context"
	"testing"
	"time"
)

// TestUpdateEndpointProbesNow is issue 13's "PATCHing endpoint_url of a
// webhook in error keeps the old next_attempt_at": a new URL gets its
// probe at once, with the backoff escalation restarted and error_since
// kept for the disable rule.
func TestUpdateEndpointProbesNow(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	hour := Backoff{Base: time.Hour, Max: time.Hour, DisableAfter: 48 * time.Hour, Jitter: 1}
	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	for range 2 {
		if _, err := s.RecordFailure(ctx, w.ID, Failure{Status: 503, Error: "status 503", StartedAt: time.Now()}, hour); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := s.Get(ctx, "a", w.ID)
	if before.State.ConsecutiveFailures != 2 {
		t.Fatalf("ConsecutiveFailures = %d, want 2", before.State.ConsecutiveFailures)
	}
	acquire := func() Slot {
		t.Helper()
		slot, err := s.AcquireSlot(ctx, w.ID, "probe", 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return slot
	}

	// Changes that are not a new URL keep the backoff.
	for _, p := range []Patch{
		{Name: ptr("renamed")},
		{EndpointURL: ptr(w.EndpointURL)},
		{Secret: ptr("another-secret-0123")},
	} {
		if _, err := s.Update(ctx, "a", w.ID, p); err != nil {
			t.Fatal(err)
		}
		if slot := acquire(); slot.Acquired || slot.RetryAfter < 59*time.Minute {
			t.Fatalf("AcquireSlot() after Update(%+v) = %+v, want RetryAfter ≈ 1h", p, slot)
		}
	}

	if _, err := s.Update(ctx, "a", w.ID, Patch{EndpointURL: ptr("https://new.example.com/hook")}); err != nil {
		t.Fatal(err)
	}
	if slot := acquire(); !slot.Acquired {
		t.Fatalf("AcquireSlot() after a new endpoint_url = %+v, want Acquired (the probe)", slot)
	}
	if slot, _ := s.AcquireSlot(ctx, w.ID, "second", 10, time.Second); slot.Acquired {
		t.Errorf("AcquireSlot(second) = %+v, want one probe only while in error", slot)
	}
	after, _ := s.Get(ctx, "a", w.ID)
	st := after.State
	if !st.NextAttemptAt.IsZero() || st.ConsecutiveFailures != 0 || !st.ErrorSince.Equal(before.State.ErrorSince) ||
		st.LastError != "status 503" {
		t.Errorf("State after a new endpoint_url = %+v, want next_attempt_at and failures cleared, error_since %v and last_error kept",
			st, before.State.ErrorSince)
	}
	// The probe's failure starts the escalation again from Base.
	r, err := s.RecordFailure(ctx, w.ID, Failure{Status: 503, StartedAt: time.Now()}, hour)
	if err != nil || r.Failures != 1 || !r.ErrorSince.Equal(before.State.ErrorSince) {
		t.Errorf("RecordFailure(probe) = %+v, %v, want 1 failure and the same error_since", r, err)
	}
}

// TestUpdateEndpointHealthyOrDisabled checks that a new URL leaves the
// state alone when there is no backoff to cut short.
func TestUpdateEndpointHealthyOrDisabled(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	if _, err := s.Update(ctx, "a", w.ID, Patch{Enabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Update(ctx, "a", w.ID, Patch{EndpointURL: ptr("https://new.example.com/")})
	if err != nil || got.Enabled || got.State.ConsecutiveFailures != 0 || !got.State.NextAttemptAt.IsZero() {
		t.Errorf("Update(disabled, new endpoint) = %+v, %v, want still disabled with a clean state", got, err)
	}
	if slot, err := s.AcquireSlot(ctx, w.ID, "h", 10, time.Second); err != nil || !slot.Gone {
		t.Errorf("AcquireSlot(disabled) = %+v, %v, want Gone", slot, err)
	}
}
