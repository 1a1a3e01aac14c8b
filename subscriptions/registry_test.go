package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

const (
	sentSMS   = "event:klaviyo.sent_sms"
	openedEm  = "event:klaviyo.opened_email"
	bouncedEm = "event:klaviyo.bounced_email"
)

func TestCreateGetRoundTrip(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	nw := newHook("acct1", "first", sentSMS, openedEm, sentSMS)
	nw.Description = ptr("my hook")
	w := mustCreate(t, s, nw)

	if _, err := uuid.Parse(w.ID); err != nil {
		t.Errorf("Create().ID = %q, not a uuid: %v", w.ID, err)
	}
	// One clock reading: created_at and updated_at in milliseconds,
	// active_since in microseconds.
	if w.CreatedAt.Before(before) || !w.CreatedAt.Equal(w.UpdatedAt) || !w.CreatedAt.Equal(w.ActiveSince.Truncate(time.Millisecond)) {
		t.Errorf("Create() times = %v/%v/%v, want equal (to the millisecond) and recent", w.CreatedAt, w.UpdatedAt, w.ActiveSince)
	}
	want := Webhook{
		ID: w.ID, AccountID: "acct1", Name: "first", Description: ptr("my hook"),
		EndpointURL: nw.EndpointURL, Secret: nw.Secret, Enabled: true,
		Topics:    []string{openedEm, sentSMS},
		CreatedAt: w.CreatedAt, UpdatedAt: w.CreatedAt, ActiveSince: w.ActiveSince,
	}
	if diff := cmp.Diff(want, w); diff != "" {
		t.Errorf("Create() mismatch (-want +got):\n%s", diff)
	}
	got, err := s.Get(ctx, "acct1", w.ID)
	if err != nil {
		t.Fatalf("Get(%s) = %v", w.ID, err)
	}
	if diff := cmp.Diff(w, got); diff != "" {
		t.Errorf("Get() mismatch (-create +get):\n%s", diff)
	}
}

func TestCreateInvalid(t *testing.T) {
	s, _ := newStore(t, Config{})
	tests := []struct {
		name  string
		edit  func(*NewWebhook)
		field string
	}{
		{"no account", func(n *NewWebhook) { n.AccountID = "" }, "account_id"},
		{"no name", func(n *NewWebhook) { n.Name = "" }, "name"},
		{"no endpoint", func(n *NewWebhook) { n.EndpointURL = "" }, "endpoint_url"},
		{"no secret", func(n *NewWebhook) { n.Secret = "" }, "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nw := newHook("a", "n", sentSMS)
			tt.edit(&nw)
			_, err := s.Create(context.Background(), nw)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Create(%s) = %v, want ErrInvalid", tt.name, err)
			}
			if got := err.Error(); !strings.Contains(got, tt.field) {
				t.Errorf("Create(%s) error = %q, want it to name %q", tt.name, got, tt.field)
			}
		})
	}
}

func TestUnknownTopic(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	_, err := s.Create(ctx, newHook("a", "n", sentSMS, "event:klaviyo.nope"))
	var te *TopicError
	if !errors.As(err, &te) || !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("Create(unknown topic) = %v, want *TopicError", err)
	}
	if te.Index != 1 || te.Topic != "event:klaviyo.nope" {
		t.Errorf("Create(unknown topic) = %+v, want index 1", te)
	}
	// Once seen on the stream, the topic is in the catalog of that account only.
	if err := s.AddTopics(ctx, "a", "event:klaviyo.nope", sentSMS, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, newHook("a", "n", sentSMS, "event:klaviyo.nope")); err != nil {
		t.Errorf("Create(seen topic) = %v, want nil", err)
	}
	if _, err := s.Create(ctx, newHook("b", "n", "event:klaviyo.nope")); !errors.As(err, &te) || te.Index != 0 {
		t.Errorf("Create(other account's topic) = %v, want *TopicError index 0", err)
	}
	w := mustCreate(t, s, newHook("b", "n", sentSMS))
	_, err = s.Update(ctx, "b", w.ID, Patch{Topics: &[]string{sentSMS, openedEm, ""}})
	if !errors.As(err, &te) || te.Index != 2 {
		t.Errorf("Update(empty topic) = %v, want *TopicError index 2", err)
	}
}

func TestTopics(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	if !slices.IsSorted(KlaviyoTopics) || len(KlaviyoTopics) != 23 {
		t.Fatalf("KlaviyoTopics: sorted %v, len %d, want sorted 23", slices.IsSorted(KlaviyoTopics), len(KlaviyoTopics))
	}
	got, err := s.Topics(ctx, "a")
	if err != nil || !slices.Equal(got, KlaviyoTopics) {
		t.Fatalf("Topics(a) = %v, %v, want KlaviyoTopics", got, err)
	}
	if err := s.AddTopics(ctx, "a", "event:shop.order", "event:aaa.x"); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Topics(ctx, "a")
	want := append(slices.Clone(KlaviyoTopics), "event:shop.order", "event:aaa.x")
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Topics(a) mismatch (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		account, topic string
		want           bool
	}{
		{"a", sentSMS, true}, {"b", sentSMS, true}, {"a", "event:shop.order", true},
		{"b", "event:shop.order", false}, {"a", "", false}, {"a", "event:klaviyo.nope", false},
	} {
		if got, err := s.HasTopic(ctx, tt.account, tt.topic); err != nil || got != tt.want {
			t.Errorf("HasTopic(%s, %q) = %v, %v, want %v", tt.account, tt.topic, got, err, tt.want)
		}
	}
}

func TestDescriptionNullEmptyAbsent(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	tests := []struct {
		name   string
		create *string
		patch  Patch
		want   *string
	}{
		{"null stays null", nil, Patch{}, nil},
		{"empty stays empty", ptr(""), Patch{}, ptr("")},
		{"text kept when absent", ptr("x"), Patch{Name: ptr("renamed")}, ptr("x")},
		{"set to null", ptr("x"), Patch{SetDescription: true}, nil},
		{"set to empty", nil, Patch{SetDescription: true, Description: ptr("")}, ptr("")},
		{"set to text", ptr(""), Patch{SetDescription: true, Description: ptr("y")}, ptr("y")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nw := newHook("a", tt.name, sentSMS)
			nw.Description = tt.create
			w := mustCreate(t, s, nw)
			if diff := cmp.Diff(tt.create, w.Description); diff != "" {
				t.Errorf("Create().Description mismatch (-want +got):\n%s", diff)
			}
			if _, err := s.Update(ctx, "a", w.ID, tt.patch); err != nil {
				t.Fatal(err)
			}
			got, _ := s.Get(ctx, "a", w.ID)
			if diff := cmp.Diff(tt.want, got.Description); diff != "" {
				t.Errorf("Get().Description mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListCreationOrder(t *testing.T) {
	s, _ := newStore(t, Config{MaxWebhooksPerAccount: 20})
	ctx := context.Background()
	var want []string
	for i := range 15 { // many inside one millisecond: order must still hold
		want = append(want, mustCreate(t, s, newHook("a", fmt.Sprint(i), sentSMS)).ID)
	}
	mustCreate(t, s, newHook("b", "other", sentSMS))
	ws, err := s.List(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range ws {
		got = append(got, w.ID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List(a) order mismatch (-want +got):\n%s", diff)
	}
	if ws, _ := s.List(ctx, "nobody"); len(ws) != 0 {
		t.Errorf("List(nobody) = %d webhooks, want 0", len(ws))
	}
	all, err := s.All(ctx)
	if err != nil || len(all) != 16 || all[15].AccountID != "b" {
		t.Errorf("All() = %d webhooks (last %q), %v, want 16 ending with account b", len(all), all[len(all)-1].AccountID, err)
	}
}

func TestOtherAccountNotFound(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("a", "mine", sentSMS))
	if _, err := s.Get(ctx, "b", w.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(b, %s) = %v, want ErrNotFound", w.ID, err)
	}
	if _, err := s.Update(ctx, "b", w.ID, Patch{Name: ptr("stolen")}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update(b, %s) = %v, want ErrNotFound", w.ID, err)
	}
	if err := s.Delete(ctx, "b", w.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete(b, %s) = %v, want ErrNotFound", w.ID, err)
	}
	for _, id := range []string{"", "missing", uuid.NewString()} {
		if _, err := s.Get(ctx, "a", id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(a, %q) = %v, want ErrNotFound", id, err)
		}
		if _, err := s.Update(ctx, "a", id, Patch{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Update(a, %q) = %v, want ErrNotFound", id, err)
		}
		if err := s.Delete(ctx, "a", id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete(a, %q) = %v, want ErrNotFound", id, err)
		}
	}
	got, err := s.Get(ctx, "a", w.ID)
	if err != nil || got.Name != "mine" {
		t.Errorf("Get(a, %s) = %q, %v, want untouched", w.ID, got.Name, err)
	}
}

func TestUpdateFields(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	time.Sleep(5 * time.Millisecond)

	same, err := s.Update(ctx, "a", w.ID, Patch{Name: ptr("n"), Topics: &[]string{sentSMS}})
	if err != nil || !same.UpdatedAt.Equal(w.UpdatedAt) {
		t.Errorf("Update(no change).UpdatedAt = %v, %v, want %v", same.UpdatedAt, err, w.UpdatedAt)
	}
	got, err := s.Update(ctx, "a", w.ID, Patch{
		Name: ptr("m"), EndpointURL: ptr("https://other.example/x"), Secret: ptr("s3cr3t-s3cr3t-s3"),
		Topics: &[]string{openedEm, sentSMS, openedEm},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := w
	want.Name, want.EndpointURL, want.Secret = "m", "https://other.example/x", "s3cr3t-s3cr3t-s3"
	want.Topics = []string{openedEm, sentSMS}
	want.UpdatedAt = got.UpdatedAt
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Update() mismatch (-want +got):\n%s", diff)
	}
	if !got.UpdatedAt.After(w.UpdatedAt) {
		t.Errorf("Update().UpdatedAt = %v, want after %v", got.UpdatedAt, w.UpdatedAt)
	}
	for _, p := range []Patch{{Name: ptr("")}, {EndpointURL: ptr("")}, {Secret: ptr("")}} {
		if _, err := s.Update(ctx, "a", w.ID, p); !errors.Is(err, ErrInvalid) {
			t.Errorf("Update(empty field) = %v, want ErrInvalid", err)
		}
	}
}

func TestRevision(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx := context.Background()
	rev := func() int64 {
		t.Helper()
		n, err := s.Revision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := rev(); got != 0 {
		t.Fatalf("Revision() on empty Redis = %d, want 0", got)
	}
	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	steps := []struct {
		name string
		do   func() error
	}{
		{"update", func() error { _, err := s.Update(ctx, "a", w.ID, Patch{Name: ptr("x")}); return err }},
		{"disable", func() error { _, err := s.Update(ctx, "a", w.ID, Patch{Enabled: ptr(false)}); return err }},
		{"enable", func() error { _, err := s.Update(ctx, "a", w.ID, Patch{Enabled: ptr(true)}); return err }},
		{"delete", func() error { return s.Delete(ctx, "a", w.ID) }},
	}
	prev := rev()
	if prev != 1 {
		t.Errorf("Revision() after create = %d, want 1", prev)
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := rev(); got != prev+1 {
			t.Errorf("Revision() after %s = %d, want %d", st.name, got, prev+1)
		}
		prev = rev()
	}
	if _, err := s.Create(ctx, newHook("a", "n", "bad")); err == nil {
		t.Fatal("Create(bad topic) = nil, want error")
	}
	if got := rev(); got != prev {
		t.Errorf("Revision() after a rejected create = %d, want %d", got, prev)
	}
}
