package api_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/webhookd/webhookd/api"
)

// A custom topic can be declared before its first event; subscribing to
// an unknown one says how.
func TestDeclareTopic(t *testing.T) {
	e := newEnv(t, func(c *api.Config) {
		c.CheckTopic = func(topic string) error {
			if !strings.HasPrefix(topic, "event:acme.") {
				return errors.New("the event stream does not capture it")
			}
			return nil
		}
	})
	const custom = "event:acme.signup"
	res := e.do("POST", "/api/webhooks", keyA, createBody("early", "https://example.com/h", custom))
	status, code, ptr := errorAt(t, res)
	detail := res.doc(t)["errors"].([]any)[0].(map[string]any)["detail"].(string)
	if status != 400 || code != "invalid" || ptr != "/data/relationships/webhook-topics/data/0/id" ||
		!strings.Contains(detail, "POST /webhookd/webhook-topics") || !strings.Contains(detail, `"id":"event:acme.signup"`) {
		t.Errorf("create with an undeclared topic: %d %s %s %q; want 400 saying how to declare it", status, code, ptr, detail)
	}

	declare := func(key, body string) response {
		return e.do("POST", "/webhookd/webhook-topics", key, body)
	}
	body := `{"data":{"type":"webhook-topic","id":"` + custom + `"}}`
	res = declare(keyA, body)
	if res.status != http.StatusCreated || res.doc(t)["data"].(map[string]any)["id"] != custom {
		t.Fatalf("declare = %d %s, want 201 and the topic", res.status, res.body)
	}
	if res := declare(keyA, body); res.status != http.StatusOK {
		t.Errorf("declare again = %d, want 200", res.status)
	}
	if res := e.do("POST", "/webhookd/webhook-topics/", keyA, `{"data":{"type":"webhook-topic","id":"event:klaviyo.sent_sms"}}`); res.status != http.StatusOK {
		t.Errorf("declare a built-in topic = %d, want 200", res.status)
	}
	if res := e.do("GET", "/api/webhook-topics/event%3Aacme.signup", keyA, ""); res.status != http.StatusOK {
		t.Errorf("GET the declared topic = %d, want 200", res.status)
	}
	if res := e.do("GET", "/api/webhook-topics/event%3Aacme.signup", keyB, ""); res.status != http.StatusNotFound {
		t.Errorf("another account sees the declared topic: %d, want 404", res.status)
	}
	if res := e.do("POST", "/api/webhooks", keyA, createBody("early", "https://example.com/h", custom)); res.status != http.StatusCreated {
		t.Errorf("create with the declared topic = %d %s, want 201", res.status, res.body)
	}
	for _, tc := range []struct {
		name, body, code, ptr string
		status                int
	}{
		{"not captured", `{"data":{"type":"webhook-topic","id":"event:other.x"}}`, "invalid", "/data/id", 400},
		{"no id", `{"data":{"type":"webhook-topic"}}`, "invalid", "/data/id", 400},
		{"wrong type", `{"data":{"type":"webhook","id":"event:acme.x"}}`, "conflict", "/data/type", 409},
		{"not JSON", `{"data":{`, "parse_error", "/data", 400},
	} {
		res := declare(keyA, tc.body)
		if status, code, ptr := errorAt(t, res); status != tc.status || code != tc.code || ptr != tc.ptr {
			t.Errorf("%s: %d %s %s, want %d %s %s", tc.name, status, code, ptr, tc.status, tc.code, tc.ptr)
		}
	}
	if res := declare("", body); res.status != http.StatusUnauthorized {
		t.Errorf("declare without a key = %d, want 401", res.status)
	}
}
