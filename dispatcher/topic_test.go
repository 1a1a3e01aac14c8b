package dispatcher

import (
	"strings"
	"testing"
)

func TestCheckTopic(t *testing.T) {
	for _, tt := range []struct {
		topic string
		want  string // in the error; empty: valid
	}{
		{"event:klaviyo.sent_sms", ""},
		{"event:klaviyo.opened_email", ""},
		{"a.b", ""},
		{"", "required"},
		{"event:klaviyo", "want 2 tokens"},
		{"event:klaviyo.sent_sms.acme", "want 2 tokens"},
		{"event:klaviyo..sent_sms", "empty token"},
		{".sent_sms", "empty token"},
		{"event:klaviyo.", "empty token"},
		{"event:klaviyo.*", "wildcards"},
		{"event:klaviyo.>", "wildcards"},
		{"event:*.sent_sms", "wildcards"},
		{"event:klaviyo.sent sms", "white space"},
		{"event:klaviyo.sent_sms\n", "white space"},
		{"event:klaviyo.\tsent_sms", "white space"},
	} {
		err := CheckTopic(tt.topic)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckTopic(%q) = %v, want nil", tt.topic, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckTopic(%q) = %v, want an error containing %q", tt.topic, err, tt.want)
		}
		// Every topic CheckTopic accepts is one ParseSubject reads back,
		// bare and with an account.
		if err == nil {
			if topic, account, perr := ParseSubject(tt.topic+".acme", "default"); perr != nil || topic != tt.topic || account != "acme" {
				t.Errorf("ParseSubject(%q) = %q, %q, %v; want %q, acme", tt.topic+".acme", topic, account, perr, tt.topic)
			}
			if _, account, perr := ParseSubject(tt.topic, "default"); perr != nil || account != "default" {
				t.Errorf("ParseSubject(%q) = account %q, %v; want default", tt.topic, account, perr)
			}
		}
	}
}

func TestCheckCaptured(t *testing.T) {
	subjects := []string{"event:klaviyo.>", "event:shop.*", "event:acme.signup.*"}
	for _, tt := range []struct {
		topic string
		want  string // in the error; empty: captured
	}{
		{"event:klaviyo.sent_sms", ""},
		{"event:shop.order", ""},  // bare topic subject
		{"event:acme.signup", ""}, // only with an account token
		{"event:acme.refund", "event:acme.>"},
		{"event:other.x", "add event:other.> to --subjects"},
		{"event:klaviyo.sent_sms.acme", "want 2 tokens"},
	} {
		err := CheckCaptured(tt.topic, subjects)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckCaptured(%q) = %v, want %q", tt.topic, err, tt.want)
		}
	}
}
