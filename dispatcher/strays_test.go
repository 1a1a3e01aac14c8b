package dispatcher

import "testing"

func TestStrayFilter(t *testing.T) {
	for _, c := range []struct {
		subject, want string
		ok            bool
	}{
		{"event:klaviyo.>", "event:klaviyo.*.*.>", true},
		{"orders.>", "orders.*.*.>", true},
		{"a.b.c.>", "a.b.c.>", true},
		{"a.*.>", "a.*.*.>", true},
		{"event:klaviyo.sent_sms", "", false},
		{"event:klaviyo.*.*", "", false},
		{"event:klaviyo.*.*.*", "event:klaviyo.*.*.*", true},
	} {
		got, ok := strayFilter(c.subject)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("strayFilter(%q) = %q, %v; want %q, %v", c.subject, got, ok, c.want, c.ok)
		}
	}
	cfg := Config{Subjects: []string{"event:klaviyo.>", "orders.created", "x.y.z.w"}}
	if got := cfg.strayFilters(); len(got) != 2 || got[0] != "event:klaviyo.*.*.>" || got[1] != "x.y.z.w" {
		t.Errorf("strayFilters = %v", got)
	}
}
