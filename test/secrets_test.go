package test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A full run at debug level — creates, a rejected create, a secret
// rotation, deliveries that succeed and fail, reads — never writes a
// secret to the logs or into an API answer.
func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := e.startWebhookd("--log-level", "debug", "--api-key", testKey+"=default")
	api := "http://" + p.logLine(t, "webhookd serving")["addr"].(string)

	const (
		first    = "whsec-first-a1b2c3d4e5f6"
		rotated  = "whsec-rotated-0f9e8d7c6b5a"
		rejected = "whsec-rejected-1357924680"
	)
	sink := NewSink(t, rotated)
	failing := NewSink(t, first)
	failing.Respond = func(int64, *Request) int { return http.StatusInternalServerError }
	create := func(url, secret string) (int, string) {
		body := `{"data":{"type":"webhook","attributes":{"name":"s","endpoint_url":"` + url + `","secret_key":"` + secret + `"},` +
			`"relationships":{"webhook-topics":{"data":[{"type":"webhook-topic","id":"` + topicSMS + `"}]}}}}`
		var out struct{ Data struct{ ID string } }
		return call(t, "POST", api+"/api/webhooks", body, &out), out.Data.ID
	}
	st, id := create(sink.URL, first)
	if st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	if st, _ := create(failing.URL, first); st != http.StatusCreated {
		t.Fatalf("create failing: %d", st)
	}
	if st, _ := create("ftp://example.com/", rejected); st != http.StatusBadRequest {
		t.Fatalf("create with a bad URL: %d, want 400", st)
	}
	patch := `{"data":{"type":"webhook","id":"` + id + `","attributes":{"secret_key":"` + rotated + `"}}}`
	if st := call(t, "PATCH", api+"/api/webhooks/"+id, patch, nil); st != http.StatusOK {
		t.Fatalf("rotate secret: %d", st)
	}
	// The rotation reaches the dispatcher within its reconcile interval.
	time.Sleep(time.Second)
	ids := e.publish(topicSMS, "secret", 20)
	waitDelivered(t, sink, ids, 30*time.Second)
	waitFor(t, 10*time.Second, "failed deliveries", func() bool { return len(failing.Requests()) >= 2 })

	for _, path := range []string{"/api/webhooks", "/api/webhooks/" + id, "/webhookd/webhooks/" + id + "/delivery-state"} {
		var b json.RawMessage
		if st := call(t, "GET", api+path, "", &b); st != http.StatusOK {
			t.Fatalf("GET %s: %d", path, st)
		}
		for _, s := range []string{first, rotated} {
			if strings.Contains(string(b), s) {
				t.Errorf("GET %s answers with a secret", path)
			}
		}
	}
	if _, err := p.stop(15 * time.Second); err != nil {
		t.Fatalf("stopping webhookd: %v", err)
	}
	logs := p.out.String()
	if !strings.Contains(logs, `"level":"debug"`) && !strings.Contains(logs, "delivery failed") {
		t.Fatalf("the logs look empty; the check would prove nothing:\n%s", tail(logs, 2000))
	}
	for _, s := range []string{first, rotated, rejected} {
		if strings.Contains(logs, s) {
			t.Errorf("secret %q appears in webhookd's logs", s)
		}
	}
}
