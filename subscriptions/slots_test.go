package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/webhookd/webhookd/test/harness"
)

func TestAcquireSlotNeverExceedsMax(t *testing.T) {
	r := harness.StartRedis(t)
	s := New(r.Client(t), Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("a", "n", sentSMS))

	const max, clients, perClient, rounds = 10, 3, 8, 40
	stores := make([]*Store, clients)
	for i := range stores {
		stores[i] = New(r.Client(t), Config{}) // separate connection pools, like replicas
	}
	var inFlight, peak atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, clients*perClient)
	for c := range clients {
		for g := range perClient {
			wg.Go(func() {
				st := stores[c]
				for i := range rounds {
					holder := fmt.Sprintf("c%d-g%d-%d", c, g, i)
					for {
						slot, err := st.AcquireSlot(ctx, w.ID, holder, max, 10*time.Second)
						if err != nil || slot.Gone {
							errc <- fmt.Errorf("AcquireSlot() = %+v, %w", slot, err)
							return
						}
						if slot.Acquired {
							break
						}
						time.Sleep(time.Millisecond)
					}
					n := inFlight.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					time.Sleep(500 * time.Microsecond)
					inFlight.Add(-1)
					if err := st.ReleaseSlot(ctx, w.ID, holder); err != nil {
						errc <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if p := peak.Load(); p > max || p < 2 {
		t.Errorf("peak concurrency = %d, want 2..%d", p, max)
	}
	t.Logf("peak concurrency %d of %d", peak.Load(), max)
	if n, err := s.SlotsInUse(ctx, w.ID); err != nil || n != 0 {
		t.Errorf("SlotsInUse() after all releases = %d, %v, want 0", n, err)
	}
}

func TestAcquireSlotLeaseExpiry(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	const lease = 200 * time.Millisecond

	acquire := func(holder string) Slot {
		t.Helper()
		slot, err := s.AcquireSlot(ctx, w.ID, holder, 1, lease)
		if err != nil {
			t.Fatalf("AcquireSlot(%s) = %v", holder, err)
		}
		return slot
	}
	if got := acquire("a"); !got.Acquired {
		t.Fatalf("AcquireSlot(a) = %+v, want acquired", got)
	}
	if got := acquire("a"); !got.Acquired { // a retry of the same holder
		t.Fatalf("AcquireSlot(a) again = %+v, want acquired (idempotent)", got)
	}
	if n, _ := s.SlotsInUse(ctx, w.ID); n != 1 {
		t.Errorf("SlotsInUse() = %d, want 1", n)
	}
	got := acquire("b")
	if got.Acquired || got.Gone || got.RetryAfter != SlotPollInterval {
		t.Errorf("AcquireSlot(b) while full = %+v, want RetryAfter %v", got, SlotPollInterval)
	}
	if ttl := rdb.PTTL(ctx, keySlots(w.ID)).Val(); ttl <= 0 || ttl > lease {
		t.Errorf("PTTL(slots) = %v, want in (0, %v]", ttl, lease)
	}

	time.Sleep(lease + 50*time.Millisecond) // a dies without releasing
	if n, _ := s.SlotsInUse(ctx, w.ID); n != 0 {
		t.Errorf("SlotsInUse() after lease = %d, want 0", n)
	}
	if got := acquire("b"); !got.Acquired {
		t.Fatalf("AcquireSlot(b) after a's lease expired = %+v, want acquired", got)
	}
	if ok, err := s.ExtendSlot(ctx, w.ID, "a", lease); err != nil || ok {
		t.Errorf("ExtendSlot(a) after expiry = %v, %v, want false", ok, err)
	}
	if ok, err := s.ExtendSlot(ctx, w.ID, "b", time.Second); err != nil || !ok {
		t.Errorf("ExtendSlot(b) = %v, %v, want true", ok, err)
	}
	if ttl := rdb.PTTL(ctx, keySlots(w.ID)).Val(); ttl <= lease {
		t.Errorf("PTTL(slots) after ExtendSlot(1s) = %v, want > %v", ttl, lease)
	}
	if err := s.ReleaseSlot(ctx, w.ID, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseSlot(ctx, w.ID, "b"); err != nil {
		t.Errorf("ReleaseSlot(b) twice = %v, want nil", err)
	}
	if ok, _ := s.ExtendSlot(ctx, w.ID, "b", lease); ok {
		t.Errorf("ExtendSlot(b) after release = true, want false")
	}
	if n, _ := s.SlotsInUse(ctx, w.ID); n != 0 {
		t.Errorf("SlotsInUse() after release = %d, want 0", n)
	}
}

func TestAcquireSlotGate(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	const lease = 10 * time.Second

	t.Run("backing off", func(t *testing.T) {
		w := mustCreate(t, s, newHook("a", "backoff", sentSMS))
		b := Backoff{Base: 10 * time.Second, Max: time.Hour, DisableAfter: time.Hour, Jitter: 1}
		if _, err := s.RecordFailure(ctx, w.ID, Failure{Status: 503, StartedAt: time.Now()}, b); err != nil {
			t.Fatal(err)
		}
		got, err := s.AcquireSlot(ctx, w.ID, "h", 10, lease)
		if err != nil || got.Acquired || got.Gone || got.RetryAfter < 9*time.Second || got.RetryAfter > 10*time.Second {
			t.Errorf("AcquireSlot(backing off) = %+v, %v, want RetryAfter ≈ 10s", got, err)
		}
	})
	t.Run("probe", func(t *testing.T) {
		w := mustCreate(t, s, newHook("a", "probe", sentSMS))
		b := Backoff{Base: time.Millisecond, Max: time.Millisecond, DisableAfter: time.Hour, Jitter: 1}
		if _, err := s.RecordFailure(ctx, w.ID, Failure{Status: 503, StartedAt: time.Now()}, b); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		if got, err := s.AcquireSlot(ctx, w.ID, "probe", 10, lease); err != nil || !got.Acquired {
			t.Fatalf("AcquireSlot(probe) = %+v, %v, want acquired", got, err)
		}
		got, err := s.AcquireSlot(ctx, w.ID, "second", 10, lease)
		if err != nil || got.Acquired || got.RetryAfter != SlotPollInterval {
			t.Errorf("AcquireSlot(second while probing) = %+v, %v, want RetryAfter %v", got, err, SlotPollInterval)
		}
		if _, err := s.RecordSuccess(ctx, w.ID); err != nil {
			t.Fatal(err)
		}
		if got, err := s.AcquireSlot(ctx, w.ID, "second", 10, lease); err != nil || !got.Acquired {
			t.Errorf("AcquireSlot(second after recovery) = %+v, %v, want acquired", got, err)
		}
	})
	t.Run("gone", func(t *testing.T) {
		disabled := mustCreate(t, s, newHook("a", "disabled", sentSMS))
		if _, err := s.Update(ctx, "a", disabled.ID, Patch{Enabled: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		deleted := mustCreate(t, s, newHook("a", "deleted", sentSMS))
		if err := s.Delete(ctx, "a", deleted.ID); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{disabled.ID, deleted.ID, "never-existed"} {
			got, err := s.AcquireSlot(ctx, id, "h", 10, lease)
			if err != nil || !got.Gone || got.Acquired {
				t.Errorf("AcquireSlot(%s) = %+v, %v, want Gone", id, got, err)
			}
		}
	})
	t.Run("invalid", func(t *testing.T) {
		for _, tt := range []struct {
			holder string
			max    int
			lease  time.Duration
		}{{"h", 0, lease}, {"h", 1, 0}, {"", 1, lease}} {
			if _, err := s.AcquireSlot(ctx, "x", tt.holder, tt.max, tt.lease); !errors.Is(err, ErrInvalid) {
				t.Errorf("AcquireSlot(%q, %d, %v) = %v, want ErrInvalid", tt.holder, tt.max, tt.lease, err)
			}
		}
	})
}

func TestSlotsRedisDown(t *testing.T) {
	r := harness.StartRedis(t)
	s := New(r.Client(t), Config{})
	r.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := s.AcquireSlot(ctx, "x", "h", 1, time.Second); err == nil || errors.Is(err, redis.Nil) {
		t.Errorf("AcquireSlot(redis down) = %v, want a connection error", err)
	}
}

// A slot taken before a disable (or delete) cannot be extended after it,
// so a request not yet sent is not sent: the disable holds at once for
// every request still to go, not only for the next batch. Before, the
// extension renewed the lease whatever the webhook's state.
func TestExtendSlotRefusesDisabledWebhook(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	for _, gone := range []string{"disabled", "deleted"} {
		t.Run(gone, func(t *testing.T) {
			w := mustCreate(t, s, newHook("acct-"+gone, "n", sentSMS))
			if slot, err := s.AcquireSlot(ctx, w.ID, "h", 1, time.Minute); err != nil || !slot.Acquired {
				t.Fatalf("AcquireSlot = %+v, %v", slot, err)
			}
			if ok, err := s.ExtendSlot(ctx, w.ID, "h", time.Minute); err != nil || !ok {
				t.Fatalf("ExtendSlot while enabled = %v, %v, want true", ok, err)
			}
			var err error
			if gone == "disabled" {
				off := false
				_, err = s.Update(ctx, w.AccountID, w.ID, Patch{Enabled: &off})
			} else {
				err = s.Delete(ctx, w.AccountID, w.ID)
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := s.ExtendSlot(ctx, w.ID, "h", time.Minute); ok || !errors.Is(err, ErrWebhookGone) {
				t.Errorf("ExtendSlot after the webhook was %s = %v, %v, want false, ErrWebhookGone", gone, ok, err)
			}
		})
	}
}
