package subscriptions

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestEpochStable(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	if e, err := s.Epoch(ctx); err != nil || e != "" {
		t.Fatalf("Epoch(empty registry) = %q, %v, want \"\"", e, err)
	}
	// A write to a missing webhook writes nothing, so an empty registry
	// keeps having no epoch.
	if _, err := s.Update(ctx, "a", "missing", Patch{Name: ptr("x")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update(missing) = %v, want ErrNotFound", err)
	}
	if e, _ := s.Epoch(ctx); e != "" {
		t.Errorf("Epoch() after a failed Update = %q, want \"\"", e)
	}

	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	e1, err := s.Epoch(ctx)
	if err != nil || len(e1) != 36 {
		t.Fatalf("Epoch() after Create = %q, %v, want a uuid", e1, err)
	}
	if _, err := s.Update(ctx, "a", w.ID, Patch{Name: ptr("renamed"), Enabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, newHook("a", "second", sentSMS))
	if err := s.Delete(ctx, "a", w.ID); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if e, err := s.Epoch(ctx); err != nil || e != e1 {
			t.Errorf("Epoch() after more writes = %q, %v, want %q", e, err, e1)
		}
		if e, err := s.EnsureEpoch(ctx); err != nil || e != e1 {
			t.Errorf("EnsureEpoch() = %q, %v, want %q", e, err, e1)
		}
	}
}

func TestEpochAfterFlush(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	mustCreate(t, s, newHook("a", "n", sentSMS))
	e1, _ := s.Epoch(ctx)

	// Redis comes back empty: no epoch until the registry is written,
	// then a new one.
	rdb.FlushAll(ctx)
	if e, err := s.Epoch(ctx); err != nil || e != "" {
		t.Fatalf("Epoch() after FLUSHALL = %q, %v, want \"\"", e, err)
	}
	mustCreate(t, s, newHook("a", "n", sentSMS))
	e2, err := s.Epoch(ctx)
	if err != nil || e2 == "" || e2 == e1 {
		t.Fatalf("Epoch() after FLUSHALL and Create = %q, %v, want a new epoch (old %q)", e2, err, e1)
	}

	rdb.FlushAll(ctx)
	e3, err := s.EnsureEpoch(ctx)
	if err != nil || e3 == "" || e3 == e2 || e3 == e1 {
		t.Fatalf("EnsureEpoch(empty) = %q, %v, want a new epoch", e3, err)
	}
	if e, _ := s.Epoch(ctx); e != e3 {
		t.Errorf("Epoch() after EnsureEpoch = %q, want %q", e, e3)
	}
}

// TestEpochEveryWrite checks that each registry write script creates a
// missing epoch (a registry whose epoch key alone was lost, or written
// by a webhookd from before the epoch).
func TestEpochEveryWrite(t *testing.T) {
	old := Backoff{Base: time.Second, Max: time.Second, DisableAfter: time.Hour}
	tests := []struct {
		name  string
		write func(ctx context.Context, s *Store, w Webhook) error
	}{
		{"create", func(ctx context.Context, s *Store, w Webhook) error {
			_, err := s.Create(ctx, newHook("a", "other", sentSMS))
			return err
		}},
		{"update", func(ctx context.Context, s *Store, w Webhook) error {
			_, err := s.Update(ctx, "a", w.ID, Patch{Name: ptr("renamed")})
			return err
		}},
		{"disable by user", func(ctx context.Context, s *Store, w Webhook) error {
			_, err := s.Update(ctx, "a", w.ID, Patch{Enabled: ptr(false)})
			return err
		}},
		{"delete", func(ctx context.Context, s *Store, w Webhook) error {
			return s.Delete(ctx, "a", w.ID)
		}},
		{"record failure disables", func(ctx context.Context, s *Store, w Webhook) error {
			s.rdb.HSet(ctx, keyWebhook(w.ID), "error_since", 1)
			r, err := s.RecordFailure(ctx, w.ID, Failure{Status: 500, StartedAt: time.Now()}, old)
			if err == nil && !r.Disabled {
				t.Errorf("RecordFailure() = %+v, want Disabled", r)
			}
			return err
		}},
		{"disable expired", func(ctx context.Context, s *Store, w Webhook) error {
			if _, err := s.RecordFailure(ctx, w.ID, Failure{Status: 500, StartedAt: time.Now()}, old); err != nil {
				return err
			}
			s.rdb.HSet(ctx, keyWebhook(w.ID), "error_since", 1)
			s.rdb.ZAdd(ctx, keyErroring, redis.Z{Score: 1, Member: w.ID})
			ids, err := s.DisableExpired(ctx, time.Hour)
			if err == nil && len(ids) != 1 {
				t.Errorf("DisableExpired() = %v, want one id", ids)
			}
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rdb := newStore(t, Config{})
			ctx := context.Background()
			w := mustCreate(t, s, newHook("a", "n", sentSMS))
			e1, _ := s.Epoch(ctx)
			rdb.Del(ctx, keyEpoch)
			if err := tt.write(ctx, s, w); err != nil {
				t.Fatal(err)
			}
			if e, err := s.Epoch(ctx); err != nil || e == "" || e == e1 {
				t.Errorf("Epoch() after %s = %q, %v, want a new epoch (old %q)", tt.name, e, err, e1)
			}
		})
	}
}

func TestEnsureEpochConcurrent(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	got := make([]string, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			var err error
			if got[i], err = s.EnsureEpoch(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, e := range got {
		if e == "" || e != got[0] {
			t.Errorf("EnsureEpoch() #%d = %q, want %q from every caller", i, e, got[0])
		}
	}
}
