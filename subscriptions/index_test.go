package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"
)

func TestLimit(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	var ids []string
	for i := range 10 {
		ids = append(ids, mustCreate(t, s, newHook("a", fmt.Sprint(i), sentSMS)).ID)
	}
	if _, err := s.Create(ctx, newHook("a", "11th", sentSMS)); !errors.Is(err, ErrLimit) {
		t.Fatalf("Create(11th) = %v, want ErrLimit", err)
	}
	mustCreate(t, s, newHook("b", "other account", sentSMS))
	if err := s.Delete(ctx, "a", ids[0]); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, newHook("a", "after delete", sentSMS))
}

func TestLimitConcurrent(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s.Create(ctx, newHook("a", fmt.Sprint(i), sentSMS))
		})
	}
	wg.Wait()
	var ok, limited int
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrLimit):
			limited++
		default:
			t.Errorf("Create() = %v, want nil or ErrLimit", err)
		}
	}
	if ok != 10 || limited != 10 {
		t.Errorf("20 concurrent Create() = %d ok, %d ErrLimit, want 10 and 10", ok, limited)
	}
	if n := rdb.ZCard(ctx, keyAccount("a")).Val(); n != 10 {
		t.Errorf("ZCARD account = %d, want 10", n)
	}
	if n := rdb.SCard(ctx, keyAll).Val(); n != 10 {
		t.Errorf("SCARD wh:all = %d, want 10", n)
	}
}

// checkIndexes compares every index key with what the webhooks imply.
func checkIndexes(t *testing.T, rdb *redis.Client, account string, ws ...Webhook) {
	t.Helper()
	ctx := context.Background()
	wantTopic := map[string][]string{}
	var wantIDs []string
	for _, w := range ws {
		wantIDs = append(wantIDs, w.ID)
		for _, tp := range w.Topics {
			wantTopic[tp] = append(wantTopic[tp], w.ID)
		}
	}
	all := rdb.SMembers(ctx, keyAll).Val()
	slices.Sort(all)
	acct := rdb.ZRange(ctx, keyAccount(account), 0, -1).Val()
	sorted := slices.Sorted(slices.Values(wantIDs))
	if diff := cmp.Diff(sorted, all, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("wh:all mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantIDs, acct, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("account zset mismatch (-want +got):\n%s", diff)
	}
	keys := rdb.Keys(ctx, keyTopicPrefix(account)+"*").Val()
	gotTopic := map[string][]string{}
	for _, k := range keys {
		m := rdb.SMembers(ctx, k).Val()
		slices.Sort(m)
		gotTopic[k[len(keyTopicPrefix(account)):]] = m
	}
	for k := range wantTopic {
		slices.Sort(wantTopic[k])
	}
	if diff := cmp.Diff(wantTopic, gotTopic, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("topic index mismatch (-want +got):\n%s", diff)
	}
}

func TestIndexesAtomic(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	w1 := mustCreate(t, s, newHook("a", "one", sentSMS, openedEm))
	w2 := mustCreate(t, s, newHook("a", "two", sentSMS))
	checkIndexes(t, rdb, "a", w1, w2)

	w1, err := s.Update(ctx, "a", w1.ID, Patch{Topics: &[]string{bouncedEm}})
	if err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, rdb, "a", w1, w2)

	w2, err = s.Update(ctx, "a", w2.ID, Patch{Topics: &[]string{}})
	if err != nil || len(w2.Topics) != 0 {
		t.Fatalf("Update(no topics) = %v, %v, want empty", w2.Topics, err)
	}
	checkIndexes(t, rdb, "a", w1, w2)

	if err := s.Delete(ctx, "a", w1.ID); err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, rdb, "a", w2)
	if n := rdb.Exists(ctx, keyWebhook(w1.ID), keySlots(w1.ID)).Val(); n != 0 {
		t.Errorf("after Delete: %d keys of the webhook left, want 0", n)
	}
	if err := s.Delete(ctx, "a", w2.ID); err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, rdb, "a")
	if err := s.Delete(ctx, "a", w2.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete twice = %v, want ErrNotFound", err)
	}
}
