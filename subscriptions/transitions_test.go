package subscriptions

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// transitionLog is a Notifier that keeps what it is told.
type transitionLog struct {
	mu sync.Mutex
	ts []Transition
}

func (l *transitionLog) notify(t Transition) {
	l.mu.Lock()
	l.ts = append(l.ts, t)
	l.mu.Unlock()
}

func (l *transitionLog) types() []TransitionType {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]TransitionType, len(l.ts))
	for i, t := range l.ts {
		out[i] = t.Type
	}
	return out
}

// Each transition of an error episode is reported once, however many
// callers race: ten concurrent failures are one failing, two sweeps one
// error_50 and one error_90, and the disable comes last.
func TestTransitionsOncePerEpisode(t *testing.T) {
	s, _ := newStore(t, Config{})
	var log transitionLog
	s.SetNotifier(log.notify)
	ctx := context.Background()
	w := mustCreate(t, s, newHook("acme", "n", sentSMS))
	b := testBackoff()
	b.DisableAfter = 400 * time.Millisecond

	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := s.RecordFailure(ctx, w.ID, Failure{Status: 503, Error: "status 503", StartedAt: time.Now()}, b); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	sweep := func() {
		var wg sync.WaitGroup
		for range 2 { // two replicas
			wg.Go(func() {
				if err := s.NoteErrorLevels(ctx, b.DisableAfter); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	sweep()
	time.Sleep(220 * time.Millisecond) // past half of DisableAfter
	sweep()
	time.Sleep(150 * time.Millisecond) // past nine tenths
	sweep()
	time.Sleep(50 * time.Millisecond)
	if _, err := s.RecordFailure(ctx, w.ID, Failure{Status: 503, Error: "status 503", StartedAt: time.Now()}, b); err != nil {
		t.Fatal(err)
	}
	want := []TransitionType{Failing, Error50, Error90, Disabled}
	if got := log.types(); !slices.Equal(got, want) {
		t.Fatalf("transitions = %v, want %v", got, want)
	}
	for _, tr := range log.ts {
		if tr.WebhookID != w.ID || tr.AccountID != "acme" || tr.ErrorSince.IsZero() || tr.LastStatus != 503 {
			t.Errorf("transition %+v, want the webhook, its account, error_since and the last status", tr)
		}
	}
	if r := log.ts[3].Reason; r == "" {
		t.Errorf("disabled transition without its reason")
	}
}

// A disable by the sweep reports the levels it skipped first; a recovery
// is reported once however many successes race.
func TestTransitionsSweepAndRecovery(t *testing.T) {
	s, _ := newStore(t, Config{})
	var log transitionLog
	s.SetNotifier(log.notify)
	ctx := context.Background()
	a := mustCreate(t, s, newHook("acme", "a", sentSMS))
	b := mustCreate(t, s, newHook("acme", "b", sentSMS))
	bo := testBackoff()
	bo.DisableAfter = 200 * time.Millisecond
	for _, id := range []string{a.ID, b.ID} {
		if _, err := s.RecordFailure(ctx, id, Failure{Status: 500, Error: "status 500", StartedAt: time.Now()}, bo); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if _, err := s.RecordSuccess(ctx, b.ID); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	time.Sleep(250 * time.Millisecond)
	if _, err := s.DisableExpired(ctx, bo.DisableAfter); err != nil {
		t.Fatal(err)
	}
	byHook := map[string][]TransitionType{}
	for _, tr := range log.ts {
		byHook[tr.WebhookID] = append(byHook[tr.WebhookID], tr.Type)
	}
	if want := []TransitionType{Failing, Error50, Error90, Disabled}; !slices.Equal(byHook[a.ID], want) {
		t.Errorf("swept webhook transitions = %v, want %v", byHook[a.ID], want)
	}
	if want := []TransitionType{Failing, Recovered}; !slices.Equal(byHook[b.ID], want) {
		t.Errorf("recovered webhook transitions = %v, want %v", byHook[b.ID], want)
	}
	got, _ := s.Get(ctx, "acme", a.ID)
	if got.State.LastAutoDisabledReason == "" || got.State.LastAutoDisabledReason != got.State.DisabledReason ||
		!got.UpdatedAt.Equal(got.State.DisabledAt) {
		t.Errorf("after the auto-disable: %+v, want updated_at = disabled_at and the reason copied", got)
	}
	if _, err := s.Update(ctx, "acme", a.ID, Patch{Enabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if got2, _ := s.Get(ctx, "acme", a.ID); got2.State.DisabledReason != "" || got2.State.LastAutoDisabledReason != got.State.DisabledReason {
		t.Errorf("after re-enable: %+v, want disabled_reason cleared and last_auto_disabled_reason kept", got2.State)
	}
}

// A replay is held by one holder at a time, ends once, and reports
// replay_finished only from FinishReplay; a cancel ends it too.
func TestReplayLifecycle(t *testing.T) {
	s, _ := newStore(t, Config{})
	var log transitionLog
	s.SetNotifier(log.notify)
	ctx := context.Background()
	w := mustCreate(t, s, newHook("acme", "n", sentSMS))
	since := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	r, err := s.CreateReplay(ctx, Replay{WebhookID: w.ID, AccountID: "acme", Since: since, Until: since.Add(time.Minute), Topics: []string{sentSMS}})
	if err != nil || r.ID == "" || r.State != ReplayRunning || !r.Since.Equal(since) || r.CreatedAt.IsZero() {
		t.Fatalf("CreateReplay = %+v, %v", r, err)
	}
	if running, _ := s.RunningReplays(ctx); len(running) != 1 || running[0] != (RunningReplay{w.ID, r.ID}) {
		t.Errorf("RunningReplays = %v, want the new one", running)
	}
	if held, running, err := s.ClaimReplay(ctx, w.ID, r.ID, "A", time.Minute); err != nil || !held || !running {
		t.Fatalf("ClaimReplay(A) = %v, %v, %v", held, running, err)
	}
	if held, running, _ := s.ClaimReplay(ctx, w.ID, r.ID, "B", time.Minute); held || !running {
		t.Errorf("ClaimReplay(B) while A holds it = %v, %v; want not held, running", held, running)
	}
	r.EventsFound, r.EventsSent, r.Checkpoint = 7, 5, 42
	if ok, _ := s.ReplayProgress(ctx, r, "B"); ok {
		t.Errorf("ReplayProgress by B = true, want false (A holds it)")
	}
	if ok, err := s.ReplayProgress(ctx, r, "A"); !ok || err != nil {
		t.Errorf("ReplayProgress by A = %v, %v", ok, err)
	}
	if ended, _ := s.FinishReplay(ctx, w.ID, r.ID, "B", ReplayDone, ""); ended {
		t.Errorf("FinishReplay by B = true, want false")
	}
	if ended, err := s.FinishReplay(ctx, w.ID, r.ID, "A", ReplayDone, ""); !ended || err != nil {
		t.Errorf("FinishReplay by A = %v, %v", ended, err)
	}
	if ended, _ := s.FinishReplay(ctx, w.ID, r.ID, "A", ReplayFailed, "again"); ended {
		t.Errorf("second FinishReplay = true, want false")
	}
	got, err := s.CancelReplay(ctx, w.ID, r.ID)
	if err != nil || got.State != ReplayDone || got.EventsSent != 5 || got.Checkpoint != 42 || got.FinishedAt.IsZero() {
		t.Errorf("CancelReplay of a finished replay = %+v, %v; want it unchanged, done", got, err)
	}
	if ts := log.types(); !slices.Equal(ts, []TransitionType{ReplayFinished}) || log.ts[0].Replay.ID != r.ID {
		t.Errorf("transitions = %v, want one replay_finished", ts)
	}
	if running, _ := s.RunningReplays(ctx); len(running) != 0 {
		t.Errorf("RunningReplays after the end = %v, want none", running)
	}

	c, _ := s.CreateReplay(ctx, Replay{WebhookID: w.ID, AccountID: "acme", Since: since, Until: since, Topics: []string{sentSMS}})
	if got, err := s.CancelReplay(ctx, w.ID, c.ID); err != nil || got.State != ReplayCancelled {
		t.Errorf("CancelReplay(running) = %+v, %v; want cancelled", got, err)
	}
	if _, running, _ := s.ClaimReplay(ctx, w.ID, c.ID, "A", time.Minute); running {
		t.Errorf("ClaimReplay of a cancelled replay says running")
	}
	if list, _ := s.ListReplays(ctx, w.ID); len(list) != 2 || list[0].ID != c.ID {
		t.Errorf("ListReplays = %v, want both, newest first", list)
	}
	if _, err := s.GetReplay(ctx, "other", r.ID); !errors.Is(err, ErrReplayNotFound) {
		t.Errorf("GetReplay(other webhook) = %v, want ErrReplayNotFound", err)
	}
}

// A replica that stops gives its replay lease up, and only its own:
// another replica can claim the replay at once, not after the lease.
func TestReleaseReplay(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("acme", "n", sentSMS))
	since := time.Now().Add(-time.Hour)
	r, err := s.CreateReplay(ctx, Replay{WebhookID: w.ID, AccountID: "acme", Since: since, Until: since.Add(time.Minute), Topics: []string{sentSMS}})
	if err != nil {
		t.Fatal(err)
	}
	if held, _, err := s.ClaimReplay(ctx, w.ID, r.ID, "A", time.Minute); err != nil || !held {
		t.Fatalf("ClaimReplay(A) = %v, %v", held, err)
	}
	if err := s.ReleaseReplay(ctx, w.ID, r.ID, "B"); err != nil {
		t.Fatal(err)
	}
	if held, _, _ := s.ClaimReplay(ctx, w.ID, r.ID, "B", time.Minute); held {
		t.Fatal("B claimed the replay after releasing a lease it did not hold")
	}
	if err := s.ReleaseReplay(ctx, w.ID, r.ID, "A"); err != nil {
		t.Fatal(err)
	}
	if held, running, _ := s.ClaimReplay(ctx, w.ID, r.ID, "B", time.Minute); !held || !running {
		t.Errorf("ClaimReplay(B) after A released = %v, %v; want held, running", held, running)
	}
}
