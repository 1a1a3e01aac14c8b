package subscriptions

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWebhookSecrets(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	w := Webhook{Secret: "old"}
	if got := w.Secrets(t0); !cmp.Equal(got, []string{"old"}) {
		t.Errorf("Secrets without a rotation = %q, want [old]", got)
	}
	w.Rotation = &Rotation{Secret: "new", PromoteAt: t0.Add(time.Hour), RetireAt: t0.Add(2 * time.Hour)}
	for _, tc := range []struct {
		at   time.Time
		want []string
	}{
		{t0, []string{"old", "new"}},
		{t0.Add(time.Hour - time.Millisecond), []string{"old", "new"}},
		{t0.Add(time.Hour), []string{"new", "old"}},
		{t0.Add(2*time.Hour - time.Millisecond), []string{"new", "old"}},
		{t0.Add(2 * time.Hour), []string{"new"}},
		{t0.Add(48 * time.Hour), []string{"new"}},
	} {
		if got := w.Secrets(tc.at); !cmp.Equal(got, tc.want) {
			t.Errorf("Secrets(%s) = %q, want %q", tc.at.Sub(t0), got, tc.want)
		}
	}
}

func TestRotate(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, Config{})
	w := mustCreate(t, s, newHook("acme", "a", "event:klaviyo.sent_sms"))
	if _, err := s.Rotate(ctx, "other", w.ID, NewRotation{Secret: "s2-0123456789abcdef"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Rotate(another account) = %v, want ErrNotFound", err)
	}
	before := time.Now()
	got, err := s.Rotate(ctx, "acme", w.ID, NewRotation{Secret: "s2-0123456789abcdef"})
	if err != nil {
		t.Fatalf("Rotate = %v", err)
	}
	r := got.Rotation
	if r == nil || r.Secret != "s2-0123456789abcdef" || got.Secret != w.Secret {
		t.Fatalf("after Rotate: secret %q, rotation %+v; want the old secret kept and the new one staged", got.Secret, r)
	}
	if r.PromoteAt.Before(before.Add(-time.Second)) || r.RetireAt.Sub(r.PromoteAt) != DefaultOverlap {
		t.Errorf("defaults: promote %s (now %s), retire after %s; want now and %s", r.PromoteAt, before, r.RetireAt.Sub(r.PromoteAt), DefaultOverlap)
	}
	if !got.UpdatedAt.Equal(w.UpdatedAt) {
		t.Errorf("updated_at moved from %s to %s; Klaviyo's resource must not change", w.UpdatedAt, got.UpdatedAt)
	}
	if _, err := s.Rotate(ctx, "acme", w.ID, NewRotation{Secret: "s3-0123456789abcdef"}); !errors.Is(err, ErrRotationPending) {
		t.Fatalf("second Rotate in the window = %v, want ErrRotationPending", err)
	}
	// A PATCH of the secret ends the rotation and marks it cancelled.
	patched, err := s.Update(ctx, "acme", w.ID, Patch{Secret: ptr("patched-0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	if patched.Rotation != nil || !cmp.Equal(patched.Secrets(time.Now()), []string{"patched-0123456789"}) {
		t.Errorf("after PATCH: rotation %+v, secrets %q; want the patched secret alone", patched.Rotation, patched.Secrets(time.Now()))
	}
	hist, err := s.Rotations(ctx, "acme", w.ID)
	if err != nil || len(hist) != 1 || hist[0].ID != r.ID || hist[0].CancelledAt.IsZero() {
		t.Fatalf("Rotations = %+v, %v; want the one rotation, cancelled", hist, err)
	}
	// A short rotation runs out; the next one compacts it first.
	now := time.Now()
	if _, err := s.Rotate(ctx, "acme", w.ID, NewRotation{Secret: "short-0123456789ab", PromoteAt: now, RetireAt: now.Add(50 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var third Webhook
	for {
		third, err = s.Rotate(ctx, "acme", w.ID, NewRotation{Secret: "third-0123456789ab"})
		if !errors.Is(err, ErrRotationPending) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Rotate after the window = %v", err)
	}
	if third.Secret != "short-0123456789ab" || third.Rotation.Secret != "third-0123456789ab" {
		t.Errorf("after compaction: secret %q, staged %q; want short… then third…", third.Secret, third.Rotation.Secret)
	}
	hist, _ = s.Rotations(ctx, "acme", w.ID)
	if len(hist) != 3 || hist[0].ID != third.Rotation.ID || !hist[1].CancelledAt.IsZero() {
		t.Errorf("Rotations = %+v; want three, newest first, the finished one not cancelled", hist)
	}
	if _, err := s.Rotations(ctx, "other", w.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Rotations(another account) = %v, want ErrNotFound", err)
	}
	if _, err := s.Rotate(ctx, "acme", w.ID, NewRotation{Secret: "x-0123456789abcdef", PromoteAt: now, RetireAt: now}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Rotate(retire = promote) = %v, want ErrInvalid", err)
	}
}
