package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"
)

// TestChangesEveryKind makes one change of each kind (and writes that
// are not registry changes) and checks that each appears in the feed
// exactly once, in order, with the revision moving too.
func TestChangesEveryKind(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	if h, err := s.ChangesHead(ctx); err != nil || h != "0-0" {
		t.Fatalf("ChangesHead(empty) = %q, %v, want 0-0", h, err)
	}
	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	old := Backoff{Base: time.Second, Max: time.Second, DisableAfter: time.Hour}
	steps := []struct {
		name string
		kind string // "" = not a registry change
		do   func() error
	}{
		{"rename", ChangeUpdate, func() error { return update(ctx, s, w.ID, Patch{Name: ptr("renamed")}) }},
		{"same name", "", func() error { return update(ctx, s, w.ID, Patch{Name: ptr("renamed")}) }},
		{"topics", ChangeUpdate, func() error { return update(ctx, s, w.ID, Patch{Topics: &[]string{openedEm}}) }},
		{"endpoint", ChangeUpdate, func() error { return update(ctx, s, w.ID, Patch{EndpointURL: ptr("https://new.example.com/")}) }},
		{"secret", ChangeUpdate, func() error { return update(ctx, s, w.ID, Patch{Secret: ptr("another-secret-0123")}) }},
		{"description", ChangeUpdate, func() error {
			return update(ctx, s, w.ID, Patch{SetDescription: true, Description: ptr("d")})
		}},
		{"disable by user", ChangeDisable, func() error { return update(ctx, s, w.ID, Patch{Enabled: ptr(false)}) }},
		{"enable", ChangeEnable, func() error { return update(ctx, s, w.ID, Patch{Enabled: ptr(true)}) }},
		{"enable again", "", func() error { return update(ctx, s, w.ID, Patch{Enabled: ptr(true)}) }},
		{"failure", "", func() error {
			_, err := s.RecordFailure(ctx, w.ID, Failure{Status: 500, StartedAt: time.Now()}, old)
			return err
		}},
		{"success", "", func() error { _, err := s.RecordSuccess(ctx, w.ID); return err }},
		{"slot", "", func() error { _, err := s.AcquireSlot(ctx, w.ID, "h", 10, time.Second); return err }},
		{"undeliverable", "", func() error { return s.SetUndeliverable(ctx, w.ID, "no consumer") }},
		{"failure disables", ChangeDisable, func() error {
			rdb.HSet(ctx, keyWebhook(w.ID), "error_since", 1)
			_, err := s.RecordFailure(ctx, w.ID, Failure{Status: 500, StartedAt: time.Now()}, old)
			return err
		}},
		{"enable after failure", ChangeEnable, func() error { return update(ctx, s, w.ID, Patch{Enabled: ptr(true)}) }},
		{"disable expired", ChangeDisable, func() error {
			if _, err := s.RecordFailure(ctx, w.ID, Failure{Status: 500, StartedAt: time.Now()}, old); err != nil {
				return err
			}
			rdb.HSet(ctx, keyWebhook(w.ID), "error_since", 1)
			rdb.ZAdd(ctx, keyErroring, redis.Z{Score: 1, Member: w.ID})
			_, err := s.DisableExpired(ctx, time.Hour)
			return err
		}},
		{"delete", ChangeDelete, func() error { return s.Delete(ctx, "a", w.ID) }},
		{"delete again", "", func() error { _ = s.Delete(ctx, "a", w.ID); return nil }},
	}
	want := []Change{{ID: w.ID, Kind: ChangeCreate}}
	for _, st := range steps {
		rev0, _ := s.Revision(ctx)
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if st.kind != "" {
			want = append(want, Change{ID: w.ID, Kind: st.kind})
			if rev, _ := s.Revision(ctx); rev <= rev0 {
				t.Errorf("%s: Revision() = %d, want > %d", st.name, rev, rev0)
			}
		}
	}

	got, cursor, err := s.Changes(ctx, "", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Change{}, "Seq")); diff != "" {
		t.Errorf("Changes() mismatch (-want +got):\n%s", diff)
	}
	for i := 1; i < len(got); i++ {
		a, _ := parseSeq(got[i-1].Seq)
		b, ok := parseSeq(got[i].Seq)
		if !ok || !a.less(b) {
			t.Errorf("Seq %q after %q, want increasing stream ids", got[i].Seq, got[i-1].Seq)
		}
	}
	if len(got) == 0 || cursor != got[len(got)-1].Seq {
		t.Fatalf("Changes() cursor = %q, want the last Seq", cursor)
	}
	if h, _ := s.ChangesHead(ctx); h != cursor {
		t.Errorf("ChangesHead() = %q, want %q", h, cursor)
	}
	if more, c2, err := s.Changes(ctx, cursor, 100, 0); err != nil || len(more) != 0 || c2 != cursor {
		t.Errorf("Changes(head) = %v, %q, %v, want none and the same cursor", more, c2, err)
	}

	// Paging in twos reads the same entries.
	var paged []Change
	for c := "0-0"; ; {
		page, next, err := s.Changes(ctx, c, 2, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 2 {
			t.Fatalf("Changes(limit 2) returned %d entries", len(page))
		}
		paged, c = append(paged, page...), next
	}
	if diff := cmp.Diff(got, paged); diff != "" {
		t.Errorf("paged Changes() mismatch (-want +got):\n%s", diff)
	}
}

func update(ctx context.Context, s *Store, id string, p Patch) error {
	_, err := s.Update(ctx, "a", id, p)
	return err
}

func TestChangesTrimmed(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	for i := range 3 {
		mustCreate(t, s, newHook("a", fmt.Sprint(i), sentSMS))
	}
	all, _, err := s.Changes(ctx, "0-0", 10, 0)
	if err != nil || len(all) != 3 {
		t.Fatalf("Changes() = %v, %v, want 3", all, err)
	}
	// Trim to the newest entry, as XADD MAXLEN ~ does to the oldest ones.
	if err := rdb.XTrimMaxLen(ctx, keyChanges, 1).Err(); err != nil {
		t.Fatal(err)
	}
	future := "99999999999999-0"
	tests := []struct {
		after string
		want  error
		n     int
	}{
		{"0-0", ErrChangesTrimmed, 0},
		{all[0].Seq, ErrChangesTrimmed, 0},
		{all[1].Seq, ErrChangesTrimmed, 0}, // cautious: the feed cannot tell whether all[1] was the last one removed
		{all[2].Seq, nil, 0},
		{future, ErrChangesTrimmed, 0}, // not from this feed: a restored or replaced registry
		{"garbage", ErrInvalid, 0},
		{"12", ErrInvalid, 0},
	}
	for _, tt := range tests {
		got, cursor, err := s.Changes(ctx, tt.after, 10, 0)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) || len(got) != tt.n || cursor != tt.after {
			t.Errorf("Changes(%q) = %v, %q, %v, want %d entries, cursor unchanged, error %v", tt.after, got, cursor, err, tt.n, tt.want)
		}
	}
	if _, _, err := s.Changes(ctx, "0-0", 0, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("Changes(limit 0) = %v, want ErrInvalid", err)
	}

	// Redis comes back empty: the feed is gone, so any cursor but the
	// start is trimmed, and the start reads nothing.
	rdb.FlushAll(ctx)
	if _, _, err := s.Changes(ctx, all[2].Seq, 10, 0); !errors.Is(err, ErrChangesTrimmed) {
		t.Errorf("Changes(old cursor) after FLUSHALL = %v, want ErrChangesTrimmed", err)
	}
	if got, c, err := s.Changes(ctx, "0-0", 10, 0); err != nil || len(got) != 0 || c != "0-0" {
		t.Errorf("Changes(0-0) after FLUSHALL = %v, %q, %v, want nothing", got, c, err)
	}
	if h, err := s.ChangesHead(ctx); err != nil || h != "0-0" {
		t.Errorf("ChangesHead() after FLUSHALL = %q, %v, want 0-0", h, err)
	}
}

func TestChangesBlocks(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	head, _ := s.ChangesHead(ctx)
	type result struct {
		cs     []Change
		cursor string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		cs, c, err := s.Changes(ctx, head, 10, time.Minute)
		done <- result{cs, c, err}
	}()
	// Create only once the reader waits in XREAD BLOCK, so that the
	// blocking path, not the first read, sees the change.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(rdb.Info(ctx, "clients").Val(), "blocked_clients:1") {
		if time.Now().After(deadline) {
			t.Fatal("Changes(block) never blocked")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	r := <-done
	if r.err != nil || len(r.cs) != 1 || r.cs[0].ID != w.ID || r.cs[0].Kind != ChangeCreate || r.cursor != r.cs[0].Seq {
		t.Errorf("Changes(block) = %v, %q, %v, want the create", r.cs, r.cursor, r.err)
	}

	// Nothing new: a short block returns nothing and the same cursor.
	cs, c, err := s.Changes(ctx, r.cursor, 10, 20*time.Millisecond)
	if err != nil || len(cs) != 0 || c != r.cursor {
		t.Errorf("Changes(block, nothing new) = %v, %q, %v, want nothing", cs, c, err)
	}
}

func TestLookup(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("acct", "n", sentSMS))
	got, err := s.Lookup(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(w, got); diff != "" {
		t.Errorf("Lookup() mismatch (-want +got):\n%s", diff)
	}
	if err := s.Delete(ctx, "acct", w.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{w.ID, "", "missing"} {
		if _, err := s.Lookup(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

// BenchmarkChange measures what one registry change costs at two
// registry sizes: "write" is the Update (a rename, with its XADD),
// "follow" what a replica then does (Changes from its cursor, Lookup of
// the one webhook; the Update is not timed), and "reload" the full All
// it replaces.
func BenchmarkChange(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{100, 10000} {
		s, _ := newStore(b, Config{MaxWebhooksPerAccount: n})
		ids := make([]string, n)
		for i := range ids {
			ids[i] = mustCreate(b, s, newHook("bench", fmt.Sprint(i), sentSMS)).ID
		}
		// rename changes one webhook's name to one never used before: the
		// testing package may call a sub-benchmark more than once.
		renames := 0
		rename := func(b *testing.B) {
			renames++
			if _, err := s.Update(ctx, "bench", ids[renames%n], Patch{Name: ptr(fmt.Sprint("r", renames))}); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("webhooks=%d/write", n), func(b *testing.B) {
			for b.Loop() {
				rename(b)
			}
		})
		b.Run(fmt.Sprintf("webhooks=%d/follow", n), func(b *testing.B) {
			cursor, err := s.ChangesHead(ctx)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				b.StopTimer()
				rename(b)
				b.StartTimer()
				cs, next, err := s.Changes(ctx, cursor, 100, 0)
				if err != nil || len(cs) != 1 {
					b.Fatalf("Changes(%q) = %v, %v, want one", cursor, cs, err)
				}
				if _, err := s.Lookup(ctx, cs[0].ID); err != nil {
					b.Fatal(err)
				}
				cursor = next
			}
		})
		b.Run(fmt.Sprintf("webhooks=%d/reload", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := s.All(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
