package test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/subscriptions"
)

// apiServerFor serves the API with d behind it (replays, test sends,
// delivery-state figures), testKey opening account.
func (e *env) apiServerFor(d *dispatcher.Dispatcher, account string) string {
	e.t.Helper()
	keys, err := subscriptions.ParseKeys([]string{testKey + "=" + account})
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{AllowInsecureEndpoints: true, Deliveries: d}, e.store, keys, zerolog.Nop()))
	e.t.Cleanup(srv.Close)
	return srv.URL
}

// apiDoc is a JSON:API answer, decoded loosely.
type apiDoc struct {
	Data struct {
		Type       string         `json:"type"`
		ID         string         `json:"id"`
		Attributes map[string]any `json:"attributes"`
	} `json:"data"`
	Errors []struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
		Detail string `json:"detail"`
		Source struct {
			Pointer string `json:"pointer"`
		} `json:"source"`
	} `json:"errors"`
}

// replayBody is a webhook-replay create document.
func replayBody(since time.Time, extra string) string {
	return `{"data":{"type":"webhook-replay","attributes":{"since":"` + since.UTC().Format(time.RFC3339Nano) + `"` + extra + `}}}`
}

// startReplay POSTs a replay and returns its id.
func startReplay(t *testing.T, base, id string, since time.Time) string {
	t.Helper()
	var doc apiDoc
	if st := call(t, "POST", base+"/webhookd/webhooks/"+id+"/replays", replayBody(since, ""), &doc); st != 202 {
		t.Fatalf("POST replays: status %d, errors %+v; want 202", st, doc.Errors)
	}
	if doc.Data.Type != "webhook-replay" || doc.Data.ID == "" || doc.Data.Attributes["state"] != "running" {
		t.Fatalf("POST replays: %+v, want a running webhook-replay", doc.Data)
	}
	return doc.Data.ID
}

// replayState GETs a replay's attributes.
func replayState(t *testing.T, base, id, rid string) map[string]any {
	t.Helper()
	var doc apiDoc
	if st := call(t, "GET", base+"/webhookd/webhooks/"+id+"/replays/"+rid, "", &doc); st != 200 {
		t.Fatalf("GET replay: status %d, errors %+v", st, doc.Errors)
	}
	return doc.Data.Attributes
}
