package dispatcher

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/webhookd/webhookd/subscriptions"
)

func TestParseSubject(t *testing.T) {
	cases := []struct {
		subject, topic, account string
		ok                      bool
	}{
		{"event:klaviyo.sent_sms", "event:klaviyo.sent_sms", "default", true},
		{"event:klaviyo.sent_sms.abc123", "event:klaviyo.sent_sms", "abc123", true},
		{"event:shopify.placed_order.X1", "event:shopify.placed_order", "X1", true},
		{"event:klaviyo", "", "", false},
		{"event:klaviyo.sent_sms.abc.extra", "", "", false},
		{"event:klaviyo..abc", "", "", false},
		{"event:klaviyo.sent_sms.", "", "", false},
		{"event:klaviyo.*", "", "", false},
		{"event:klaviyo.sent_sms.>", "", "", false},
		{"", "", "", false},
	}
	for _, tc := range cases {
		topic, account, err := ParseSubject(tc.subject, "default")
		if (err == nil) != tc.ok || topic != tc.topic || account != tc.account {
			t.Errorf("ParseSubject(%q) = %q, %q, %v; want %q, %q, ok=%v", tc.subject, topic, account, err, tc.topic, tc.account, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadSubject) {
			t.Errorf("ParseSubject(%q) error %v is not ErrBadSubject", tc.subject, err)
		}
	}
}

// FuzzParseSubject: never panics, and what it accepts puts back together
// into the subject it came from.
func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{"event:klaviyo.sent_sms", "event:klaviyo.sent_sms.acct", "a.b.c.d", "..", "event:klaviyo.>", "é.ü.ß"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		topic, account, err := ParseSubject(s, "default")
		if err != nil {
			return
		}
		if strings.Count(topic, ".") != 1 {
			t.Fatalf("ParseSubject(%q) topic %q is not two tokens", s, topic)
		}
		if topic != s && topic+"."+account != s {
			t.Fatalf("ParseSubject(%q) = %q, %q: does not rebuild the subject", s, topic, account)
		}
	})
}

func TestCheckStreamSubject(t *testing.T) {
	for s, ok := range map[string]bool{
		"event:klaviyo.>": true, "event:shopify.>": true, "evt.>": true,
		">": false, "*.>": false, "event:*.>": false, "event:klaviyo": false,
	} {
		if err := CheckStreamSubject(s); (err == nil) != ok {
			t.Errorf("CheckStreamSubject(%q) = %v, want ok=%v", s, err, ok)
		}
	}
}

func TestFilterSubjects(t *testing.T) {
	cases := []struct {
		account string
		want    []string
	}{
		{"default", []string{"event:klaviyo.clicked_sms", "event:klaviyo.clicked_sms.default", "event:klaviyo.sent_sms", "event:klaviyo.sent_sms.default"}},
		{"abc123", []string{"event:klaviyo.clicked_sms.abc123", "event:klaviyo.sent_sms.abc123"}},
	}
	for _, tc := range cases {
		w := subscriptions.Webhook{AccountID: tc.account, Topics: []string{"event:klaviyo.sent_sms", "event:klaviyo.clicked_sms"}}
		if diff := cmp.Diff(tc.want, filterSubjects(w, "default")); diff != "" {
			t.Errorf("filterSubjects(%s) mismatch (-want +got):\n%s", tc.account, diff)
		}
	}
}

// A replay reads the stored subjects of its topics only; no topics is
// no subjects, never an unfiltered read of every account's events.
func TestStoredSubjectsOfNoTopicsIsNone(t *testing.T) {
	w := subscriptions.Webhook{ID: "w", AccountID: "acme", Topics: []string{"event:klaviyo.sent_sms"}}
	for _, parts := range []int{0, 16} {
		c := Config{Partitions: parts, DefaultAccount: "default"}
		if got := c.storedSubjects(w, nil); got != nil {
			t.Errorf("partitions %d: storedSubjects(no topics) = %v, want none", parts, got)
		}
		if got := c.storedSubjects(w, w.Topics); len(got) == 0 {
			t.Errorf("partitions %d: storedSubjects(%v) is empty", parts, w.Topics)
		}
	}
}
