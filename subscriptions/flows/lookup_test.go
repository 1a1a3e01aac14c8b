package flows

import (
	"context"
	"errors"
	"testing"

	"github.com/webhookd/webhookd/test/harness"
)

// Lookup finds a flow whatever its account; an unknown id is not found.
func TestLookup(t *testing.T) {
	ctx := context.Background()
	s := NewStore(harness.StartRedis(t).Client(t))
	in, temp := newTestFlow("acct")
	f, err := s.Create(ctx, in, temp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Lookup(ctx, f.ID)
	if err != nil || got.ID != f.ID || got.AccountID != "acct" {
		t.Errorf("Lookup = %+v, %v; want the flow of acct", got, err)
	}
	if _, err := s.Lookup(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(unknown) = %v, want ErrNotFound", err)
	}
}
