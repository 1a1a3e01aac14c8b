package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/webhookd/webhookd/subscriptions"
)

// FuzzDecodeWebhook feeds arbitrary bodies to the create and update
// decoders: they never panic, and each either returns a request that
// passes every rule or an error that renders as a JSON:API client error
// pointing into the body. Seeds are in testdata/fuzz/FuzzDecodeWebhook.
func FuzzDecodeWebhook(f *testing.F) {
	f.Add([]byte(`{"data":{"type":"webhook","attributes":{"name":"n","endpoint_url":"https://example.com/x","secret_key":"0123456789abcdef"},` +
		`"relationships":{"webhook-topics":{"data":[{"type":"webhook-topic","id":"event:klaviyo.sent_sms"}]}}}}`))
	f.Add([]byte(`{"data":{"type":"webhook","id":"01ID","attributes":{"description":null,"enabled":true}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		nw, err := parseCreate(body, false)
		if err != nil {
			checkClientError(t, err)
		} else {
			checkCreate(t, nw)
		}
		p, err := parsePatch(body, "01ID", false)
		if err != nil {
			checkClientError(t, err)
		} else {
			checkPatch(t, p)
		}
	})
}

func checkClientError(t *testing.T, err error) {
	t.Helper()
	status, errs, internal := (&server{}).toAPIErrors(err)
	if internal || (status != http.StatusBadRequest && status != http.StatusConflict) {
		t.Fatalf("toAPIErrors(%v) = %d, internal %v; want a 400 or 409", err, status, internal)
	}
	for _, e := range errs {
		if e.status != status || titles[e.code] == "" || e.detail == "" || !strings.HasPrefix(e.pointer, "/data") || e.parameter != "" {
			t.Fatalf("error object %+v of status %d", e, status)
		}
	}
	if _, err := json.Marshal(newErrorDocument(errs)); err != nil {
		t.Fatalf("encode error document: %v", err)
	}
}

func checkCreate(t *testing.T, nw subscriptions.NewWebhook) {
	t.Helper()
	if blank(nw.Name) || blank(nw.Secret) || len(nw.Topics) == 0 {
		t.Fatalf("parseCreate accepted %+v", nw)
	}
	if err := subscriptions.ValidateEndpoint(nw.EndpointURL, false); err != nil {
		t.Fatalf("parseCreate accepted endpoint %q: %v", nw.EndpointURL, err)
	}
	for _, topic := range nw.Topics {
		if topic == "" {
			t.Fatalf("parseCreate accepted an empty topic: %+v", nw)
		}
	}
}

func checkPatch(t *testing.T, p subscriptions.Patch) {
	t.Helper()
	if (p.Name != nil && blank(*p.Name)) || (p.Secret != nil && blank(*p.Secret)) ||
		(p.Description != nil && !p.SetDescription) || (p.Topics != nil && len(*p.Topics) == 0) {
		t.Fatalf("parsePatch accepted %+v", p)
	}
	if p.EndpointURL != nil {
		if err := subscriptions.ValidateEndpoint(*p.EndpointURL, false); err != nil {
			t.Fatalf("parsePatch accepted endpoint %q: %v", *p.EndpointURL, err)
		}
	}
}

func blank(s string) bool { return strings.TrimSpace(s) == "" }
