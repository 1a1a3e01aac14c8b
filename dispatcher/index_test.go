package dispatcher

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

const (
	ixSMS   = "event:klaviyo.sent_sms"
	ixOpen  = "event:klaviyo.opened_email"
	ixClick = "event:klaviyo.clicked_email"
)

// TestIndexFollowsChanges makes each kind of registry change and checks
// that the index reflects it and reports it exactly once, and that a
// change the index need not report (an update that changes nothing) is
// silent.
func TestIndexFollowsChanges(t *testing.T) {
	var a1 subscriptions.Webhook
	e := newIxEnv(t, func(e *ixEnv) {
		a1 = e.create(t, "a", "a1", ixSMS)
		e.create(t, "b", "b1", ixSMS, ixOpen)
		e.create(t, "default", "d1", ixSMS)
	})
	x := e.x
	ixLoaded(t, x)
	if got, want := ixTargets(x, "", ixSMS), []string{"d1"}; !cmp.Equal(got, want) {
		t.Fatalf(`Targets("", sms) = %v, want %v`, got, want)
	}
	if got := x.Len(); got != 3 {
		t.Fatalf("Len() = %d after the first load, want 3", got)
	}
	if got := e.changes.take(); len(got) != 0 {
		t.Fatalf("the first load reported %v, want nothing", got)
	}

	var a2 subscriptions.Webhook
	var since time.Time
	get := func() *subscriptions.Webhook { w, _ := x.Get(a2.ID); return w }
	steps := []struct {
		name  string
		do    func()
		want  []string
		check func() string // "" = fine
	}{
		{"create", func() { a2 = e.create(t, "a", "a2", ixOpen) }, []string{"nil->a2"}, func() string {
			return ixDiff(ixTargets(x, "a", ixOpen), []string{"a2"})
		}},
		{"rename", func() { e.update(t, a2, subscriptions.Patch{Name: ptrTo("a2x")}) }, []string{"a2->a2x"}, nil},
		{"topics", func() { e.update(t, a2, subscriptions.Patch{Topics: &[]string{ixSMS, ixClick}}) }, []string{"a2x->a2x"}, func() string {
			return ixDiff(ixTargets(x, "a", ixOpen), nil) + ixDiff(ixTargets(x, "a", ixClick), []string{"a2x"}) +
				ixDiff(ixSorted(ixTargets(x, "a", ixSMS)), []string{"a1", "a2x"})
		}},
		{"endpoint", func() { e.update(t, a2, subscriptions.Patch{EndpointURL: ptrTo("https://new.example.com/x")}) }, []string{"a2x->a2x"}, func() string {
			since = get().ActiveSince
			return ixDiff([]string{get().EndpointURL}, []string{"https://new.example.com/x"})
		}},
		{"disable", func() { e.update(t, a2, subscriptions.Patch{Enabled: ptrTo(false)}) }, []string{"a2x->a2x(off)"}, func() string {
			return ixDiff(ixTargets(x, "a", ixSMS), []string{"a1"}) + ixDiff(ixTargets(x, "a", ixClick), nil)
		}},
		{"enable", func() { e.update(t, a2, subscriptions.Patch{Enabled: ptrTo(true)}) }, []string{"a2x(off)->a2x"}, func() string {
			if !get().ActiveSince.After(since) {
				return fmt.Sprintf("ActiveSince %v, want after %v", get().ActiveSince, since)
			}
			return ixDiff(ixTargets(x, "a", ixClick), []string{"a2x"})
		}},
		{"delete", func() {
			if err := e.store.Delete(context.Background(), "a", a2.ID); err != nil {
				t.Fatal(err)
			}
		}, []string{"a2x->nil"}, func() string {
			if get() != nil || x.Len() != 3 {
				return fmt.Sprintf("Get = %v, Len = %d, want gone and 3", get(), x.Len())
			}
			return ixDiff(ixTargets(x, "a", ixSMS), []string{"a1"}) + ixDiff(ixTargets(x, "a", ixClick), nil)
		}},
		{"a hint that changes nothing but State, then create", func() {
			ctx := context.Background()
			b := subscriptions.Backoff{Base: time.Second, Max: time.Second, DisableAfter: time.Hour}
			if _, err := e.store.RecordFailure(ctx, a1.ID, subscriptions.Failure{Status: 500, StartedAt: time.Now()}, b); err != nil {
				t.Fatal(err)
			}
			// A repeated feed entry, as a retried write script may leave.
			if err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: "wh:changes", Values: []string{"id", a1.ID, "kind", "update"}}).Err(); err != nil {
				t.Fatal(err)
			}
			e.create(t, "c", "c1", ixSMS)
		}, []string{"nil->c1"}, func() string {
			if w, _ := x.Get(a1.ID); w.State.ConsecutiveFailures != 1 {
				return fmt.Sprintf("Get(a1).State.ConsecutiveFailures = %d, want 1 (refreshed by the hint)", w.State.ConsecutiveFailures)
			}
			return ""
		}},
	}
	var got []string
	for _, st := range steps {
		st.do()
		ixWait(t, st.name, func() bool { got = append(got, e.changes.take()...); return len(got) >= len(st.want) })
		if diff := cmp.Diff(st.want, got); diff != "" {
			t.Errorf("%s: onChange calls (-want +got):\n%s", st.name, diff)
		}
		if st.check != nil {
			if msg := st.check(); msg != "" {
				t.Errorf("%s: %s", st.name, msg)
			}
		}
		got = nil
	}
}

// ixDiff is "" when got equals want, else a description.
func ixDiff(got, want []string) string {
	if cmp.Equal(got, want) {
		return ""
	}
	return fmt.Sprintf("got %v, want %v; ", got, want)
}

func ixSorted(s []string) []string {
	s = append([]string(nil), s...)
	slices.Sort(s)
	return s
}

// TestIndexChangeDuringLoad changes the registry after All has read it
// but before the first load is applied: the index must still end up
// with the changes (it follows the feed from the head taken before All).
func TestIndexChangeDuringLoad(t *testing.T) {
	var w1 subscriptions.Webhook
	var mu sync.Mutex
	var w2 subscriptions.Webhook
	e := newIxEnv(t, func(e *ixEnv) {
		w1 = e.create(t, "a", "w1", ixSMS)
		e.feed.afterAll = func() {
			ctx := context.Background()
			if _, err := e.store.Update(ctx, "a", w1.ID, subscriptions.Patch{Topics: &[]string{ixOpen}}); err != nil {
				t.Errorf("Update(w1) = %v", err)
			}
			w, err := e.store.Create(ctx, subscriptions.NewWebhook{
				AccountID: "a", Name: "w2", EndpointURL: "https://example.com/w2", Secret: "0123456789abcdef", Topics: []string{ixSMS},
			})
			if err != nil {
				t.Errorf("Create(w2) = %v", err)
			}
			mu.Lock()
			w2 = w
			mu.Unlock()
		}
	})
	ixLoaded(t, e.x)
	ixWait(t, "the changes made during the load", func() bool {
		return cmp.Equal(ixTargets(e.x, "a", ixOpen), []string{"w1"}) && cmp.Equal(ixTargets(e.x, "a", ixSMS), []string{"w2"})
	})
	mu.Lock()
	defer mu.Unlock()
	if _, ok := e.x.Get(w2.ID); !ok || e.x.Len() != 2 {
		t.Errorf("Get(w2) = _, %v, Len() = %d, want true, 2", ok, e.x.Len())
	}
	if n := e.feed.alls.Load(); n != 1 {
		t.Errorf("All was called %d times, want 1 (the changes come from the feed)", n)
	}
}

// TestIndexTrimmedFeedReloads loses a change from the feed (XTRIM while
// the index is not reading it): the index must notice the gap, reload
// everything, and report the difference.
func TestIndexTrimmedFeedReloads(t *testing.T) {
	var w1 subscriptions.Webhook
	e := newIxEnv(t, func(e *ixEnv) { w1 = e.create(t, "a", "w1", ixSMS) })
	ixLoaded(t, e.x)
	release := e.feed.hold(t)
	e.create(t, "a", "w2", ixSMS)
	if err := e.store.Delete(context.Background(), "a", w1.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.XTrimMaxLen(context.Background(), "wh:changes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	release()
	ixWait(t, "the reload", func() bool { return cmp.Equal(ixTargets(e.x, "a", ixSMS), []string{"w2"}) })
	if n := e.feed.alls.Load(); n != 2 {
		t.Errorf("All was called %d times, want 2 (the first load and one reload)", n)
	}
	if diff := cmp.Diff([]string{"nil->w2", "w1->nil"}, ixSorted(e.changes.take())); diff != "" {
		t.Errorf("onChange calls of the reload (-want +got):\n%s", diff)
	}
	// The index follows the feed again from the reload's head.
	e.create(t, "a", "w3", ixOpen)
	ixWait(t, "a change after the reload", func() bool { return cmp.Equal(ixTargets(e.x, "a", ixOpen), []string{"w3"}) })
}

// TestIndexGateKeepsOld replaces the registry (FLUSHALL) while the gate
// refuses it: the index must keep serving the webhooks it had, log the
// refusal once however often it retries, and apply the registry once the
// gate allows it.
func TestIndexGateKeepsOld(t *testing.T) {
	var open atomic.Bool
	var asked atomic.Int32
	open.Store(true)
	e := newIxEnv(t, func(e *ixEnv) {
		e.create(t, "a", "g1", ixSMS)
		e.create(t, "a", "g2", ixSMS)
		e.x.allow = func(context.Context) (bool, error) { asked.Add(1); return open.Load(), nil }
	})
	ixLoaded(t, e.x)
	open.Store(false)
	release := e.feed.hold(t)
	if err := e.rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	n0 := asked.Load()
	release()
	ixWait(t, "three refused reloads", func() bool { return asked.Load() >= n0+3 })
	if got := ixSorted(ixTargets(e.x, "a", ixSMS)); !cmp.Equal(got, []string{"g1", "g2"}) || e.x.Len() != 2 {
		t.Errorf("while refused: Targets(a, sms) = %v, Len() = %d, want [g1 g2], 2", got, e.x.Len())
	}
	if n := e.log.count(errIndexGate.Error()); n != 1 {
		t.Errorf("the refusal was logged %d times, want 1", n)
	}
	if got := e.changes.take(); len(got) != 0 {
		t.Errorf("while refused, onChange reported %v, want nothing", got)
	}
	open.Store(true)
	ixWait(t, "the allowed reload", func() bool { return e.x.Len() == 0 })
	if diff := cmp.Diff([]string{"g1->nil", "g2->nil"}, ixSorted(e.changes.take())); diff != "" {
		t.Errorf("onChange calls of the allowed reload (-want +got):\n%s", diff)
	}
	e.create(t, "a", "g3", ixSMS)
	ixWait(t, "a change in the new registry", func() bool { return cmp.Equal(ixTargets(e.x, "a", ixSMS), []string{"g3"}) })
}

// TestIndexRedisOutage stops Redis: the index must keep serving, log the
// outage once however often it retries, and log the recovery once.
func TestIndexRedisOutage(t *testing.T) {
	e := newIxEnv(t, func(e *ixEnv) { e.create(t, "a", "o1", ixSMS) })
	ixLoaded(t, e.x)
	release := e.feed.hold(t)
	e.redis.Stop()
	release()
	const down = "cannot use the registry"
	ixWait(t, "the outage logged", func() bool { return e.log.count(down) > 0 })
	// Each retry is one more held-free Changes call; count three more.
	for i := range 3 {
		e.feed.hold(t)()
		if got := ixTargets(e.x, "a", ixSMS); !cmp.Equal(got, []string{"o1"}) {
			t.Fatalf("retry %d: Targets(a, sms) = %v, want [o1]", i, got)
		}
	}
	if n := e.log.count(down); n != 1 {
		t.Errorf("the outage was logged %d times, want 1", n)
	}
	e.redis.Start(t) // empty: no gate here, so the index reloads it
	ixWait(t, "the recovery logged", func() bool { return e.log.count("reads the registry again") == 1 })
	e.create(t, "a", "o2", ixSMS)
	ixWait(t, "a change after the outage", func() bool { return cmp.Equal(ixTargets(e.x, "a", ixSMS), []string{"o2"}) })
	if n := e.log.count(down); n != 1 {
		t.Errorf("the outage was logged %d times in all, want 1", n)
	}
}

// TestIndexRetryingSet: retrying() is the enabled webhooks with the
// retrying flag, kept as changes are applied (not a scan).
func TestIndexRetryingSet(t *testing.T) {
	x := newIndex(nil, "default", zerolog.Nop())
	ids := func() []string {
		var out []string
		for _, w := range x.retrying() {
			out = append(out, w.ID)
		}
		slices.Sort(out)
		return out
	}
	w := subscriptions.Webhook{ID: "w1", AccountID: "a", Enabled: true, Topics: []string{ixSMS}}
	other := subscriptions.Webhook{ID: "w2", AccountID: "a", Enabled: true, Topics: []string{ixSMS}}
	other.State.Retrying = true
	x.apply(other.ID, &other)
	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{"created, not retrying", func() { x.apply(w.ID, &w) }, []string{"w2"}},
		{"flag set", func() { w.State.Retrying = true; x.apply(w.ID, &w) }, []string{"w1", "w2"}},
		{"disabled", func() { w.Enabled = false; x.apply(w.ID, &w) }, []string{"w2"}},
		{"enabled again, still flagged", func() { w.Enabled = true; x.apply(w.ID, &w) }, []string{"w1", "w2"}},
		{"flag cleared", func() { w.State.Retrying = false; x.apply(w.ID, &w) }, []string{"w2"}},
		{"other deleted", func() { x.apply(other.ID, nil) }, nil},
	}
	for _, s := range steps {
		s.do()
		if got := ids(); !slices.Equal(got, s.want) {
			t.Errorf("%s: retrying() = %v, want %v", s.name, got, s.want)
		}
	}
}
