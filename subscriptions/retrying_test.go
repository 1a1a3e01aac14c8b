package subscriptions

import (
	"context"
	"testing"
)

// The retrying flag is set once, reaches the change feed, and is
// cleared by an enable; a disabled webhook is never set retrying.
func TestSetRetrying(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("acct", "r", "event:klaviyo.sent_sms"))
	head, err := s.ChangesHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		changed, err := s.SetRetrying(ctx, w.ID, true)
		if err != nil || changed != want {
			t.Fatalf("SetRetrying #%d = %v, %v; want %v", i, changed, err, want)
		}
	}
	got, err := s.Lookup(ctx, w.ID)
	if err != nil || !got.State.Retrying {
		t.Fatalf("Lookup = %+v, %v; want Retrying", got.State, err)
	}
	chs, _, err := s.Changes(ctx, head, 10, 0)
	if err != nil || len(chs) != 1 || chs[0].ID != w.ID {
		t.Fatalf("Changes = %v, %v; want one change of %s", chs, err, w.ID)
	}
	off, on := false, true
	if _, err := s.Update(ctx, "acct", w.ID, Patch{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "acct", w.ID, Patch{Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Lookup(ctx, w.ID); got.State.Retrying {
		t.Error("Retrying still set after disable and enable")
	}
	if _, err := s.Update(ctx, "acct", w.ID, Patch{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	if changed, err := s.SetRetrying(ctx, w.ID, true); err != nil || changed {
		t.Errorf("SetRetrying(disabled) = %v, %v; want no change", changed, err)
	}
}
