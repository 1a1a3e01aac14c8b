package subscriptions

import (
	"context"
	"strings"
	"testing"
)

func TestSetUndeliverable(t *testing.T) {
	s, rdb := newStore(t, Config{})
	ctx := context.Background()
	w := mustCreate(t, s, newHook("a", "n", sentSMS))
	rev0, _ := s.Revision(ctx)
	head0, _ := s.ChangesHead(ctx)
	reason := "consumer: maximum consumers limit reached"
	steps := []struct {
		reason      string
		wantChanged int
		want        string
	}{
		{reason, 1, reason},
		{reason, 0, reason}, // unchanged: no write
		{"other", 1, "other"},
		{"", 1, ""},
		{"", 0, ""},
		{strings.Repeat("é", 150), 1, strings.Repeat("é", maxErrorLen/2)},
	}
	for _, st := range steps {
		// The script's reply says whether it wrote; SetUndeliverable
		// runs the same script.
		n, err := undeliverableScript.Run(ctx, s.rdb, []string{keyWebhook(w.ID)}, truncate(st.reason, maxErrorLen)).Int()
		if err != nil || n != st.wantChanged {
			t.Errorf("undeliverable script(%.20q) = %d, %v, want %d", st.reason, n, err, st.wantChanged)
		}
		if err := s.SetUndeliverable(ctx, w.ID, st.reason); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Lookup(ctx, w.ID)
		if got.State.UndeliverableReason != st.want {
			t.Errorf("SetUndeliverable(%.20q): reason = %.20q, want %.20q", st.reason, got.State.UndeliverableReason, st.want)
		}
		if st.want == "" && rdb.HExists(ctx, keyWebhook(w.ID), "undeliverable_reason").Val() {
			t.Errorf("SetUndeliverable(\"\") left the field in the hash")
		}
	}
	if rev, _ := s.Revision(ctx); rev != rev0 {
		t.Errorf("Revision() = %d, want %d: not a registry change", rev, rev0)
	}
	if head, _ := s.ChangesHead(ctx); head != head0 {
		t.Errorf("ChangesHead() = %q, want %q: not a registry change", head, head0)
	}

	if err := s.Delete(ctx, "a", w.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUndeliverable(ctx, w.ID, reason); err != nil {
		t.Errorf("SetUndeliverable(deleted) = %v, want nil", err)
	}
	if n := rdb.Exists(ctx, keyWebhook(w.ID)).Val(); n != 0 {
		t.Errorf("SetUndeliverable(deleted) recreated the record")
	}
	if err := s.SetUndeliverable(ctx, "", reason); err != nil {
		t.Errorf("SetUndeliverable(\"\") = %v, want nil", err)
	}
}
