package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

// testBackoff is a policy that neither waits long nor disables.
func testBackoff() Backoff {
	return Backoff{Base: 100 * time.Millisecond, Max: time.Second, DisableAfter: time.Hour, Jitter: 1}
}

func TestRecordFailureEscalatesOncePerRound(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	started := time.Now().Add(-10 * time.Millisecond)

	var wg sync.WaitGroup
	results := make([]FailureResult, 10)
	for i := range results {
		wg.Go(func() {
			var err error
			results[i], err = s.RecordFailure(ctx, w.ID, Failure{Status: 503, Error: "status 503", StartedAt: started}, testBackoff())
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, r := range results {
		if r.Failures != 1 || r.Gone || r.Disabled || r.ErrorSince.IsZero() || r.Delay <= 0 || r.Delay > 100*time.Millisecond {
			t.Errorf("RecordFailure() #%d = %+v, want 1 failure, delay ≤ 100ms", i, r)
		}
	}
	got, _ := s.Get(ctx, "a", w.ID)
	if got.State.ConsecutiveFailures != 1 || got.State.LastStatus != 503 || got.State.LastError != "status 503" {
		t.Errorf("State = %+v, want 1 failure, 503", got.State)
	}
	if score := rdb.ZScore(ctx, keyErroring, w.ID).Val(); int64(score) != got.State.ErrorSince.UnixMilli() {
		t.Errorf("wh:erroring score = %v, want error_since %d", score, got.State.ErrorSince.UnixMilli())
	}

	// The next round started after the first failure was recorded.
	r, err := s.RecordFailure(ctx, w.ID, Failure{Status: 0, Error: "timeout", StartedAt: time.Now()}, testBackoff())
	if err != nil || r.Failures != 2 || r.Delay != 200*time.Millisecond || !r.ErrorSince.Equal(results[0].ErrorSince) {
		t.Errorf("RecordFailure(next round) = %+v, %v, want 2 failures, 200ms, same error_since", r, err)
	}
}

func TestRecordFailureDelay(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second, DisableAfter: time.Hour}
	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	for i, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		r, err := s.RecordFailure(ctx, w.ID, Failure{Status: 500, StartedAt: time.Now()}, b)
		if err != nil || r.Failures != i+1 || r.Delay != want*time.Millisecond {
			t.Errorf("RecordFailure() #%d = %+v, %v, want %d failures, delay %v", i+1, r, err, i+1, want*time.Millisecond)
		}
	}
	got, _ := s.Get(ctx, "a", w.ID)
	if d := got.State.NextAttemptAt.Sub(got.State.LastFailureAt); d != time.Second {
		t.Errorf("next_attempt_at - last_failure_at = %v, want 1s", d)
	}

	// A huge failure count must not overflow: the cap applies.
	rdb.HSet(ctx, keyWebhook(w.ID), "consecutive_failures", 100000)
	huge := Backoff{Base: time.Hour, Max: 1 << 62, DisableAfter: 1 << 62}
	if r, err := s.RecordFailure(ctx, w.ID, Failure{StartedAt: time.Now()}, huge); err != nil || r.Failures != 100001 || r.Delay != (1<<62)/time.Millisecond*time.Millisecond {
		t.Errorf("RecordFailure(100000 failures) = %+v, %v, want the 2^62ns cap", r, err)
	}
}

func TestRecordFailureJitter(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	for _, tt := range []struct {
		jitter float64
		want   time.Duration
	}{{1.2, 1200 * time.Millisecond}, {0.8, 800 * time.Millisecond}, {1.0005, 1001 * time.Millisecond}, {0, time.Second}, {-1, time.Second}} {
		w := mustCreate(t, s, newHook(fmt.Sprint(tt.jitter), "n", sentSMS))
		b := Backoff{Base: time.Second, Max: time.Hour, DisableAfter: time.Hour, Jitter: tt.jitter}
		if r, err := s.RecordFailure(ctx, w.ID, Failure{StartedAt: time.Now()}, b); err != nil || r.Delay != tt.want {
			t.Errorf("RecordFailure(jitter %v).Delay = %v, %v, want %v", tt.jitter, r.Delay, err, tt.want)
		}
	}
}

func TestRecordFailureDisables(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	b := testBackoff()
	b.DisableAfter = 300 * time.Millisecond

	first, err := s.RecordFailure(ctx, w.ID, Failure{Status: 502, Error: "status 502", StartedAt: time.Now()}, b)
	if err != nil || first.Disabled || first.Gone {
		t.Fatalf("RecordFailure(first) = %+v, %v, want retry", first, err)
	}
	rev0, _ := s.Revision(ctx)
	time.Sleep(350 * time.Millisecond)
	last, err := s.RecordFailure(ctx, w.ID, Failure{Status: 0, Error: "connection refused", StartedAt: time.Now()}, b)
	if err != nil || !last.Disabled || last.Gone || !last.ErrorSince.Equal(first.ErrorSince) {
		t.Fatalf("RecordFailure(after 300ms) = %+v, %v, want Disabled", last, err)
	}
	if rev, _ := s.Revision(ctx); rev != rev0+1 {
		t.Errorf("Revision() after disable = %d, want %d", rev, rev0+1)
	}
	got, _ := s.Get(ctx, "a", w.ID)
	wantReason := "endpoint failing since " + first.ErrorSince.Format(time.RFC3339) + " (last error: connection refused)"
	if got.Enabled || got.State.DisabledAt.IsZero() || got.State.DisabledReason != wantReason {
		t.Errorf("after disable: enabled %v, disabled_at %v, reason %q, want disabled with %q",
			got.Enabled, got.State.DisabledAt, got.State.DisabledReason, wantReason)
	}
	if strings.Contains(got.State.DisabledReason, w.Secret) {
		t.Errorf("disabled_reason %q contains the secret", got.State.DisabledReason)
	}
	if err := rdb.ZScore(ctx, keyErroring, w.ID).Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("wh:erroring after disable: %v, want no entry", err)
	}
	if r, err := s.RecordFailure(ctx, w.ID, Failure{StartedAt: time.Now()}, b); err != nil || !r.Gone {
		t.Errorf("RecordFailure(disabled) = %+v, %v, want Gone", r, err)
	}
	if r, err := s.RecordFailure(ctx, "missing", Failure{StartedAt: time.Now()}, b); err != nil || !r.Gone {
		t.Errorf("RecordFailure(missing) = %+v, %v, want Gone", r, err)
	}
	if ok, err := s.RecordSuccess(ctx, w.ID); err != nil || ok {
		t.Errorf("RecordSuccess(disabled) = %v, %v, want false", ok, err)
	}
	if got2, _ := s.Get(ctx, "a", w.ID); got2.Enabled || got2.State.DisabledReason != wantReason {
		t.Errorf("RecordSuccess(disabled) changed the webhook: %+v", got2)
	}
}

func TestRecordFailureTruncatesError(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	long := strings.Repeat("é", 150) // 300 bytes
	if _, err := s.RecordFailure(ctx, w.ID, Failure{Error: long, StartedAt: time.Now()}, testBackoff()); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, "a", w.ID)
	if want := strings.Repeat("é", 100); got.State.LastError != want {
		t.Errorf("LastError = %d bytes, want %d", len(got.State.LastError), len(want))
	}
}

func TestRecordSuccess(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	if ok, err := s.RecordSuccess(ctx, w.ID); err != nil || ok {
		t.Errorf("RecordSuccess(healthy) = %v, %v, want false", ok, err)
	}
	for range 3 {
		if _, err := s.RecordFailure(ctx, w.ID, Failure{Status: 500, Error: "status 500", StartedAt: time.Now()}, testBackoff()); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.RecordSuccess(ctx, w.ID); err != nil || !ok {
		t.Errorf("RecordSuccess(in error) = %v, %v, want true", ok, err)
	}
	got, _ := s.Get(ctx, "a", w.ID)
	st := got.State
	if !st.ErrorSince.IsZero() || st.ConsecutiveFailures != 0 || !st.NextAttemptAt.IsZero() || st.LastSuccessAt.IsZero() {
		t.Errorf("State after RecordSuccess = %+v, want healthy with last_success_at", st)
	}
	if err := rdb.ZScore(ctx, keyErroring, w.ID).Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("wh:erroring after recovery: %v, want no entry", err)
	}
	if ok, err := s.RecordSuccess(ctx, w.ID); err != nil || ok {
		t.Errorf("RecordSuccess(recovered) = %v, %v, want false", ok, err)
	}
	if ok, err := s.RecordSuccess(ctx, "missing"); err != nil || ok {
		t.Errorf("RecordSuccess(missing) = %v, %v, want false", ok, err)
	}
	if n := rdb.Exists(ctx, keyWebhook("missing")).Val(); n != 0 {
		t.Errorf("RecordSuccess(missing) created the record")
	}
	// A new error period starts counting from 1 again.
	r, err := s.RecordFailure(ctx, w.ID, Failure{StartedAt: time.Now()}, testBackoff())
	if err != nil || r.Failures != 1 || r.Delay != 100*time.Millisecond {
		t.Errorf("RecordFailure(after recovery) = %+v, %v, want 1 failure, 100ms", r, err)
	}
}

func TestDisableExpired(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	fail := func(id string) {
		t.Helper()
		if _, err := s.RecordFailure(ctx, id, Failure{Status: 500, Error: "status 500", StartedAt: time.Now()}, testBackoff()); err != nil {
			t.Fatal(err)
		}
	}
	old := mustCreate(t, s, newHook("a", "old", sentSMS))
	recovered := mustCreate(t, s, newHook("a", "recovered", sentSMS))
	fresh := mustCreate(t, s, newHook("a", "fresh", sentSMS))
	healthy := mustCreate(t, s, newHook("a", "healthy", sentSMS))
	fail(old.ID)
	fail(recovered.ID)
	rdb.ZAdd(ctx, keyErroring, redis.Z{Score: 1, Member: "ghost"}) // a leftover of a lost write
	time.Sleep(350 * time.Millisecond)
	fail(fresh.ID)
	if _, err := s.RecordSuccess(ctx, recovered.ID); err != nil {
		t.Fatal(err)
	}
	rev0, _ := s.Revision(ctx)

	got, err := s.DisableExpired(ctx, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{old.ID}, got); diff != "" {
		t.Errorf("DisableExpired(300ms) mismatch (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		w       Webhook
		enabled bool
	}{{old, false}, {recovered, true}, {fresh, true}, {healthy, true}} {
		w, _ := s.Get(ctx, "a", tt.w.ID)
		if w.Enabled != tt.enabled {
			t.Errorf("after DisableExpired: %s enabled = %v, want %v", tt.w.Name, w.Enabled, tt.enabled)
		}
	}
	if w, _ := s.Get(ctx, "a", old.ID); !strings.HasPrefix(w.State.DisabledReason, "endpoint failing since ") ||
		!strings.HasSuffix(w.State.DisabledReason, "(last error: status 500)") {
		t.Errorf("disabled_reason = %q", w.State.DisabledReason)
	}
	if rev, _ := s.Revision(ctx); rev != rev0+1 {
		t.Errorf("Revision() = %d, want %d", rev, rev0+1)
	}
	members := rdb.ZRange(ctx, keyErroring, 0, -1).Val()
	if diff := cmp.Diff([]string{fresh.ID}, members); diff != "" {
		t.Errorf("wh:erroring mismatch (-want +got):\n%s", diff)
	}
	if got, err := s.DisableExpired(ctx, 300*time.Millisecond); err != nil || len(got) != 0 {
		t.Errorf("DisableExpired() again = %v, %v, want none", got, err)
	}
	if _, err := s.DisableExpired(ctx, 0); err == nil {
		t.Errorf("DisableExpired(0) = nil, want an error")
	}
}

func TestLuaRFC3339(t *testing.T) {
	_, rdb := newStore(t, Config{})
	script := redis.NewScript(luaPrelude + `return rfc3339(tonumber(ARGV[1]))`)
	for _, in := range []string{
		"1970-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "2000-02-29T12:34:56Z", "2000-03-01T00:00:00Z",
		"2024-02-29T23:59:59Z", "2026-07-15T08:09:10Z", "2100-03-01T00:00:01Z", "9999-12-31T23:59:59Z",
	} {
		tm, _ := time.Parse(time.RFC3339, in)
		ms := tm.UnixMilli() + 999
		got, err := script.Run(context.Background(), rdb, nil, ms).Text()
		if err != nil || got != in {
			t.Errorf("rfc3339(%d) = %q, %v, want %q", ms, got, err, in)
		}
	}
}

func TestEnableDisable(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	rev0, _ := s.Revision(ctx)

	// Put the webhook in error first, so that disabling clears it.
	if _, err := s.RecordFailure(ctx, w.ID, Failure{Status: 500, Error: "status 500", StartedAt: time.Now()}, testBackoff()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	off, err := s.Update(ctx, "a", w.ID, Patch{Enabled: ptr(false)})
	if err != nil {
		t.Fatal(err)
	}
	if off.Enabled || off.State.DisabledAt.IsZero() || off.State.DisabledReason != "disabled by user" ||
		!off.State.ErrorSince.IsZero() || off.State.ConsecutiveFailures != 0 {
		t.Errorf("Update(enabled=false) = %+v, want disabled by user with no error", off)
	}
	if !off.ActiveSince.Equal(w.ActiveSince) {
		t.Errorf("Update(enabled=false).ActiveSince = %v, want unchanged %v", off.ActiveSince, w.ActiveSince)
	}
	if !errors.Is(rdb.ZScore(ctx, keyErroring, w.ID).Err(), redis.Nil) {
		t.Errorf("wh:erroring still has %s after disable", w.ID)
	}
	again, _ := s.Update(ctx, "a", w.ID, Patch{Enabled: ptr(false)})
	if !again.State.DisabledAt.Equal(off.State.DisabledAt) {
		t.Errorf("Update(enabled=false twice).DisabledAt = %v, want %v", again.State.DisabledAt, off.State.DisabledAt)
	}

	time.Sleep(5 * time.Millisecond)
	on, err := s.Update(ctx, "a", w.ID, Patch{Enabled: ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	if !on.Enabled || !on.ActiveSince.After(w.ActiveSince) || !on.ActiveSince.Truncate(time.Millisecond).Equal(on.UpdatedAt) {
		t.Errorf("Update(enabled=true) = enabled %v, active_since %v, want enabled, active_since now (%v)", on.Enabled, on.ActiveSince, on.UpdatedAt)
	}
	if diff := cmp.Diff(DeliveryState{}, on.State); diff != "" {
		t.Errorf("Update(enabled=true).State mismatch (-want +got):\n%s", diff)
	}
	rev1, _ := s.Revision(ctx)
	// RecordFailure does not bump; three updates do.
	if rev1 != rev0+3 {
		t.Errorf("Revision() = %d, want %d", rev1, rev0+3)
	}
}
