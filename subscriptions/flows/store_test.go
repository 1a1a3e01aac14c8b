package flows

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookd/webhookd/test/harness"
)

func newTestFlow(account string) (Flow, []string) {
	msg := func(name string) Message {
		return Message{Name: name, URL: "https://example.com/" + name, Headers: map[string]string{"X-Token": "secret-123"}, Body: `{}`}
	}
	return Flow{AccountID: account, Name: "f", TriggerID: "event:klaviyo.placed_order", EntryID: "t1",
		Actions: []Action{{Status: StatusLive, Next: "t2", Message: msg("a")}, {Status: StatusDraft, Message: msg("b")}}}, []string{"t1", "t2"}
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	s := NewStore(harness.StartRedis(t).Client(t))
	rev0, _ := s.Rev(ctx)
	in, temp := newTestFlow("acct")
	f, err := s.Create(ctx, in, temp)
	if err != nil {
		t.Fatal(err)
	}
	if f.Status != StatusDraft || f.EntryID != f.Actions[0].ID || f.Actions[0].Next != f.Actions[1].ID || f.Actions[1].Next != "" {
		t.Fatalf("Create resolved links wrongly: %+v", f)
	}
	if rev, _ := s.Rev(ctx); rev == rev0 {
		t.Error("Create did not bump the revision")
	}
	if _, err := s.Get(ctx, "other", f.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(other account) = %v, want ErrNotFound", err)
	}
	if _, err := s.FlowOfAction(ctx, "other", f.Actions[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("FlowOfAction(other account) = %v, want ErrNotFound", err)
	}
	got, err := s.FlowOfAction(ctx, "acct", f.Actions[1].ID)
	if err != nil || got.ID != f.ID {
		t.Errorf("FlowOfAction = %v, %v", got.ID, err)
	}
	up, err := s.Update(ctx, "acct", f.ID, func(f *Flow) error { f.Status = StatusLive; return nil })
	if err != nil || up.Status != StatusLive {
		t.Fatalf("Update = %+v, %v", up, err)
	}
	list, err := s.List(ctx, "acct")
	if err != nil || len(list) != 1 || list[0].Status != StatusLive {
		t.Fatalf("List = %+v, %v", list, err)
	}
	all, err := s.All(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("All = %d flows, %v", len(all), err)
	}
	if err := s.Record(ctx, f.Actions[0].ID, WillRetry); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, f.Actions[0].ID, RetryDelivered); err != nil {
		t.Fatal(err)
	}
	c, _ := s.Counts(ctx, f.Actions[0].ID)
	if c != (Counts{Delivered: 1, Attempts: 2, Failed: 1}) {
		t.Errorf("Counts = %+v", c)
	}
	if err := s.Delete(ctx, "acct", f.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "acct", f.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete = %v", err)
	}
	if all, _ := s.All(ctx); len(all) != 0 {
		t.Errorf("All after Delete = %d flows", len(all))
	}
}

// Concurrent holders never exceed the semaphore's size.
func TestAcquire(t *testing.T) {
	ctx := context.Background()
	s := NewStore(harness.StartRedis(t).Client(t))
	var cur, peak atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			holder := string(rune('a' + i))
			for {
				ok, err := s.Acquire(ctx, "act", holder, 3, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					break
				}
				time.Sleep(time.Millisecond)
			}
			n := cur.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(2 * time.Millisecond)
			cur.Add(-1)
			if err := s.Release(ctx, "act", holder); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 3 || p == 0 {
		t.Errorf("peak holders = %d, want 1..3", p)
	}
}

func TestValidateHeaders(t *testing.T) {
	for _, h := range []map[string]string{
		{"Host": "x"}, {"content-length": "1"}, {"Connection": "close"}, {"Transfer-Encoding": "chunked"},
		{"X-A": "a\r\nInjected: 1"}, {"Bad Name": "x"}, {"X-Klaviyo-Flow-ID": "f"},
	} {
		if err := ValidateHeaders(h); err == nil {
			t.Errorf("ValidateHeaders(%v) = nil, want an error", h)
		}
	}
	if err := ValidateHeaders(map[string]string{"Authorization": "Bearer x", "X-Shop-Token": "t0k3n"}); err != nil {
		t.Errorf("ValidateHeaders(good) = %v", err)
	}
	if m := Mask("t0k3n-long-secret"); m != "t0********" {
		t.Errorf("Mask = %q", m)
	}
}

// DeleteAction closes the chain over the deleted action (in the middle,
// and as the entry), drops its counters and its action->flow key, and
// refuses the flow's only action.
func TestDeleteAction(t *testing.T) {
	ctx := context.Background()
	s := NewStore(harness.StartRedis(t).Client(t))
	msg := Message{URL: "https://example.com/", Body: `{}`}
	f, err := s.Create(ctx, Flow{AccountID: "acct", Name: "f", TriggerID: "M1", EntryID: "t1", Actions: []Action{
		{Next: "t2", Message: msg}, {Next: "t3", Message: msg}, {Message: msg}}}, []string{"t1", "t2", "t3"})
	if err != nil {
		t.Fatal(err)
	}
	a1, a2, a3 := f.Actions[0].ID, f.Actions[1].ID, f.Actions[2].ID
	if err := s.Record(ctx, a2, Delivered); err != nil {
		t.Fatal(err)
	}
	rev0, _ := s.Rev(ctx)
	if _, err := s.DeleteAction(ctx, "other", a2); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteAction(other account) = %v, want ErrNotFound", err)
	}
	got, err := s.DeleteAction(ctx, "acct", a2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Actions) != 2 || got.EntryID != a1 || got.Actions[0].Next != a3 || got.Actions[1].ID != a3 {
		t.Errorf("after deleting the middle action: %+v, want %s -> %s", got, a1, a3)
	}
	if rev, _ := s.Rev(ctx); rev == rev0 {
		t.Error("DeleteAction did not bump the revision")
	}
	if ok, err := s.ActionExists(ctx, a2); ok || err != nil {
		t.Errorf("ActionExists(deleted) = %v, %v; want false", ok, err)
	}
	if ok, _ := s.ActionExists(ctx, a1); !ok {
		t.Error("ActionExists(kept) = false")
	}
	if c, _ := s.Counts(ctx, a2); c != (Counts{}) {
		t.Errorf("the deleted action's counts = %+v, want none", c)
	}
	if _, err := s.DeleteAction(ctx, "acct", a2); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteAction twice = %v, want ErrNotFound", err)
	}
	got, err = s.DeleteAction(ctx, "acct", a1)
	if err != nil || got.EntryID != a3 || len(got.Actions) != 1 {
		t.Errorf("after deleting the entry action: %+v, %v; want %s the entry", got, err, a3)
	}
	if _, err := s.DeleteAction(ctx, "acct", a3); !errors.Is(err, ErrLastAction) {
		t.Errorf("DeleteAction(only action) = %v, want ErrLastAction", err)
	}
	if stored, _ := s.Get(ctx, "acct", f.ID); len(stored.Actions) != 1 || stored.EntryID != a3 {
		t.Errorf("stored flow = %+v", stored)
	}
}
