package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// apiErrors decodes a JSON:API error document strictly: id, code, title
// and detail must be strings and status an integer, as the Python SDK's
// pydantic models require.
func apiErrors(tb testing.TB, res response) []map[string]any {
	tb.Helper()
	if ct := res.header.Get("Content-Type"); ct != "application/vnd.api+json" {
		tb.Errorf("Content-Type = %q, want application/vnd.api+json", ct)
	}
	list, ok := res.doc(tb)["errors"].([]any)
	if !ok || len(list) == 0 {
		tb.Fatalf("body %s: no errors[]", res.body)
	}
	out := make([]map[string]any, len(list))
	for i, item := range list {
		e := item.(map[string]any)
		for _, k := range []string{"id", "code", "title", "detail"} {
			if s, ok := e[k].(string); !ok || s == "" {
				tb.Errorf("errors[%d].%s = %#v, want a non-empty string", i, k, e[k])
			}
		}
		if st, ok := e["status"].(float64); !ok || int(st) != res.status {
			tb.Errorf("errors[%d].status = %#v, want %d", i, e["status"], res.status)
		}
		out[i] = e
	}
	return out
}

// source returns errors[i].source.pointer and .parameter.
func source(e map[string]any) (pointer, parameter string) {
	src, _ := e["source"].(map[string]any)
	pointer, _ = src["pointer"].(string)
	parameter, _ = src["parameter"].(string)
	return pointer, parameter
}

func TestErrors(t *testing.T) {
	e := newEnv(t, nil)
	idA := e.create(keyA, "a", topicSMS)
	idB := e.create(keyB, "b", topicSMS)
	for i := range 3 {
		e.create(keyC, "c"+string(rune('0'+i)), topicSMS)
	}

	const topics = `"relationships":{"webhook-topics":{"data":[{"type":"webhook-topic","id":"event:klaviyo.sent_sms"}]}}`
	withURL := func(u string) string { return createBody("x", u, topicSMS) }
	patch := func(attrs string) string {
		return `{"data":{"type":"webhook","id":"` + idA + `","attributes":{` + attrs + `}}}`
	}
	tests := []struct {
		name         string
		method, path string
		auth         string // Authorization header; "" = none
		body         string
		status       int
		code         string
		pointer      string
		param        string
	}{
		{"malformed JSON", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, `{"data":`, 400, "parse_error", "/data", ""},
		{"not JSON", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, `name=x`, 400, "parse_error", "/data", ""},
		{"empty body", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, ``, 400, "parse_error", "/data", ""},
		{"data not an object", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, `{"data":[]}`, 400, "invalid", "/data", ""},
		{"no data", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, `{}`, 400, "invalid", "/data", ""},
		{"wrong type on create", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA,
			strings.Replace(createBody("x", "https://example.com/", topicSMS), `"type":"webhook"`, `"type":"event"`, 1), 409, "conflict", "/data/type", ""},
		{"missing name", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA,
			`{"data":{"type":"webhook","attributes":{"endpoint_url":"https://example.com/","secret_key":"0123456789abcdef"},` + topics + `}}`, 400, "invalid", "/data/attributes/name", ""},
		{"empty name", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA,
			`{"data":{"type":"webhook","attributes":{"name":" ","endpoint_url":"https://example.com/","secret_key":"0123456789abcdef"},` + topics + `}}`, 400, "invalid", "/data/attributes/name", ""},
		{"name not a string", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA,
			`{"data":{"type":"webhook","attributes":{"name":7,"endpoint_url":"https://example.com/","secret_key":"0123456789abcdef"},` + topics + `}}`, 400, "invalid", "/data/attributes/name", ""},
		{"missing endpoint_url", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA,
			`{"data":{"type":"webhook","attributes":{"name":"x","secret_key":"0123456789abcdef"},` + topics + `}}`, 400, "invalid", "/data/attributes/endpoint_url", ""},
		{"missing secret_key", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA,
			`{"data":{"type":"webhook","attributes":{"name":"x","endpoint_url":"https://example.com/"},` + topics + `}}`, 400, "invalid", "/data/attributes/secret_key", ""},
		{"missing topics", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA,
			`{"data":{"type":"webhook","attributes":{"name":"x","endpoint_url":"https://example.com/","secret_key":"0123456789abcdef"}}}`, 400, "invalid", "/data/relationships/webhook-topics/data", ""},
		{"empty topics", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, createBody("x", "https://example.com/"), 400, "invalid", "/data/relationships/webhook-topics/data", ""},
		{"unknown topic", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, createBody("x", "https://example.com/", topicSMS, "event:klaviyo.nope"), 400, "invalid", "/data/relationships/webhook-topics/data/1/id", ""},
		{"topic of wrong type", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA,
			strings.Replace(createBody("x", "https://example.com/", topicSMS), `"type":"webhook-topic"`, `"type":"metric"`, 1), 400, "invalid", "/data/relationships/webhook-topics/data/0/type", ""},
		{"http URL", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, withURL("http://example.com/x"), 400, "invalid", "/data/attributes/endpoint_url", ""},
		{"userinfo URL", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, withURL("https://user:pw@example.com/x"), 400, "invalid", "/data/attributes/endpoint_url", ""},
		{"loopback IPv4", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, withURL("https://127.0.0.1/x"), 400, "invalid", "/data/attributes/endpoint_url", ""},
		{"private IPv4", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, withURL("https://10.0.0.5/"), 400, "invalid", "/data/attributes/endpoint_url", ""},
		{"loopback IPv6", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, withURL("https://[::1]/"), 400, "invalid", "/data/attributes/endpoint_url", ""},
		{"link-local metadata", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, withURL("https://169.254.169.254/"), 400, "invalid", "/data/attributes/endpoint_url", ""},
		{"localhost", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, withURL("https://localhost:8443/"), 400, "invalid", "/data/attributes/endpoint_url", ""},
		{"URL too long", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, withURL("https://example.com/" + strings.Repeat("a", 2100)), 400, "invalid", "/data/attributes/endpoint_url", ""},
		{"description not a string", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA,
			strings.Replace(createBody("x", "https://example.com/", topicSMS), `"description":"d"`, `"description":{}`, 1), 400, "invalid", "/data/attributes/description", ""},
		{"not a URL", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA, withURL("example.com"), 400, "invalid", "/data/attributes/endpoint_url", ""},
		{"over the limit", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyC, createBody("x", "https://example.com/", topicSMS), 400, "invalid", "/data", ""},
		{"body too large", "POST", "/api/webhooks", "Klaviyo-API-Key " + keyA,
			createBody(strings.Repeat("n", 70<<10), "https://example.com/", topicSMS), 413, "request_too_large", "", ""},

		{"PATCH wrong type", "PATCH", "/api/webhooks/" + idA, "Klaviyo-API-Key " + keyA,
			`{"data":{"type":"webhooks","id":"` + idA + `","attributes":{}}}`, 409, "conflict", "/data/type", ""},
		{"PATCH id mismatch", "PATCH", "/api/webhooks/" + idA, "Klaviyo-API-Key " + keyA,
			`{"data":{"type":"webhook","id":"` + idB + `","attributes":{}}}`, 409, "conflict", "/data/id", ""},
		{"PATCH missing id", "PATCH", "/api/webhooks/" + idA, "Klaviyo-API-Key " + keyA,
			`{"data":{"type":"webhook","attributes":{"name":"n"}}}`, 400, "invalid", "/data/id", ""},
		{"PATCH malformed JSON", "PATCH", "/api/webhooks/" + idA, "Klaviyo-API-Key " + keyA, `{`, 400, "parse_error", "/data", ""},
		{"PATCH empty name", "PATCH", "/api/webhooks/" + idA, "Klaviyo-API-Key " + keyA, patch(`"name":""`), 400, "invalid", "/data/attributes/name", ""},
		{"PATCH enabled not a bool", "PATCH", "/api/webhooks/" + idA, "Klaviyo-API-Key " + keyA, patch(`"enabled":"yes"`), 400, "invalid", "/data/attributes/enabled", ""},
		{"PATCH http URL", "PATCH", "/api/webhooks/" + idA, "Klaviyo-API-Key " + keyA, patch(`"endpoint_url":"http://example.com/"`), 400, "invalid", "/data/attributes/endpoint_url", ""},
		{"PATCH unknown topic", "PATCH", "/api/webhooks/" + idA, "Klaviyo-API-Key " + keyA,
			`{"data":{"type":"webhook","id":"` + idA + `","attributes":{},"relationships":{"webhook-topics":{"data":[{"type":"webhook-topic","id":"x:y"}]}}}}`,
			400, "invalid", "/data/relationships/webhook-topics/data/0/id", ""},

		{"GET unknown id", "GET", "/api/webhooks/01NOPE", "Klaviyo-API-Key " + keyA, "", 404, "not_found", "", ""},
		{"PATCH unknown id", "PATCH", "/api/webhooks/01NOPE", "Klaviyo-API-Key " + keyA,
			`{"data":{"type":"webhook","id":"01NOPE","attributes":{"name":"n"}}}`, 404, "not_found", "", ""},
		{"DELETE unknown id", "DELETE", "/api/webhooks/01NOPE/", "Klaviyo-API-Key " + keyA, "", 404, "not_found", "", ""},
		{"GET other account", "GET", "/api/webhooks/" + idB, "Klaviyo-API-Key " + keyA, "", 404, "not_found", "", ""},
		{"PATCH other account", "PATCH", "/api/webhooks/" + idB, "Klaviyo-API-Key " + keyA,
			`{"data":{"type":"webhook","id":"` + idB + `","attributes":{"name":"stolen"}}}`, 404, "not_found", "", ""},
		{"DELETE other account", "DELETE", "/api/webhooks/" + idB, "Klaviyo-API-Key " + keyA, "", 404, "not_found", "", ""},
		{"state of other account", "GET", "/webhookd/webhooks/" + idB + "/delivery-state", "Klaviyo-API-Key " + keyA, "", 404, "not_found", "", ""},
		{"unknown topic id", "GET", "/api/webhook-topics/event%3Aklaviyo.nope", "Klaviyo-API-Key " + keyA, "", 404, "not_found", "", ""},

		{"no key", "GET", "/api/webhooks", "", "", 401, "not_authenticated", "", ""},
		{"basic scheme", "GET", "/api/webhooks", "Basic " + keyA, "", 401, "not_authenticated", "", ""},
		{"scheme without key", "GET", "/api/webhooks", "Klaviyo-API-Key ", "", 401, "not_authenticated", "", ""},
		{"bad key", "GET", "/api/webhooks", "Klaviyo-API-Key pk_wrong", "", 401, "authentication_failed", "", ""},
		{"bad bearer", "POST", "/api/webhooks", "Bearer pk_wrong", createBody("x", "https://example.com/", topicSMS), 401, "authentication_failed", "", ""},

		{"unknown include", "GET", "/api/webhooks?include=accounts", "Klaviyo-API-Key " + keyA, "", 400, "invalid", "", "include"},
		{"include on topics", "GET", "/api/webhook-topics?include=webhook-topics", "Klaviyo-API-Key " + keyA, "", 400, "invalid", "", "include"},
		{"unknown webhook field", "GET", "/api/webhooks/" + idA + "?fields[webhook]=name,secret_key", "Klaviyo-API-Key " + keyA, "", 400, "invalid", "", "fields[webhook]"},
		{"unknown topic field", "GET", "/api/webhook-topics?fields%5Bwebhook-topic%5D=name", "Klaviyo-API-Key " + keyA, "", 400, "invalid", "", "fields[webhook-topic]"},

		{"unknown path", "GET", "/api/nope", "Klaviyo-API-Key " + keyA, "", 404, "not_found", "", ""},
		{"subtree of a slash route", "GET", "/api/webhooks/" + idA + "/extra", "Klaviyo-API-Key " + keyA, "", 404, "not_found", "", ""},
		{"PUT", "PUT", "/api/webhooks/" + idA, "Klaviyo-API-Key " + keyA, "{}", 405, "method_not_allowed", "", ""},
		{"DELETE collection", "DELETE", "/api/webhooks/", "Klaviyo-API-Key " + keyA, "", 405, "method_not_allowed", "", ""},
		{"POST topics", "POST", "/api/webhook-topics", "Klaviyo-API-Key " + keyA, "{}", 405, "method_not_allowed", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.doHeaders(tt.method, tt.path, tt.body, map[string]string{"Authorization": tt.auth}, tt.auth == "")
			if res.status != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, res.status, res.body, tt.status)
			}
			errs := apiErrors(t, res)
			if errs[0]["code"] != tt.code {
				t.Errorf("code = %v, want %s", errs[0]["code"], tt.code)
			}
			if p, q := source(errs[0]); p != tt.pointer || q != tt.param {
				t.Errorf("source = (pointer %q, parameter %q), want (%q, %q)", p, q, tt.pointer, tt.param)
			}
			if res.status == http.StatusMethodNotAllowed && res.header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}

	res := e.do("POST", "/api/webhooks", keyC, createBody("x", "https://example.com/", topicSMS))
	if d, _ := apiErrors(t, res)[0]["detail"].(string); !strings.Contains(d, "maximum of 3 webhooks") {
		t.Errorf("over the limit: detail %q does not state the limit", d)
	}

	// Nothing above changed A's webhook nor touched B's.
	for _, key := range []string{keyA, keyB} {
		if res := e.do("GET", "/api/webhooks", key, ""); len(res.doc(t)["data"].([]any)) != 1 {
			t.Errorf("after the errors, %s has %s", key, res.body)
		}
	}
}

// TestErrorsAll checks that validation reports every faulty field.
func TestErrorsAll(t *testing.T) {
	e := newEnv(t, nil)
	res := e.do("POST", "/api/webhooks/", keyA, `{"data":{"type":"webhook","attributes":{"name":7,"endpoint_url":"http://x/"}}}`)
	if res.status != http.StatusBadRequest {
		t.Fatalf("status = %d %s, want 400", res.status, res.body)
	}
	var got []string
	for _, er := range apiErrors(t, res) {
		p, _ := source(er)
		got = append(got, p)
	}
	want := []string{"/data/attributes/endpoint_url", "/data/attributes/name", "/data/attributes/secret_key", "/data/relationships/webhook-topics/data"}
	if slices.Sort(got); !slices.Equal(got, want) {
		t.Errorf("pointers = %v, want %v", got, want)
	}
}

// TestInternalError checks that a store failure is a generic 500 whose
// error is logged once, with the id the client got, and never shown.
func TestInternalError(t *testing.T) {
	e := newEnv(t, nil)
	e.redis.Stop()
	res := e.do("GET", "/api/webhooks", keyA, "")
	if res.status != http.StatusInternalServerError {
		t.Fatalf("GET with Redis down = %d %s, want 500", res.status, res.body)
	}
	er := apiErrors(t, res)[0]
	if er["code"] != "error" || er["detail"] != "A server error occurred." {
		t.Errorf("error %v, want code error and a generic detail", er)
	}
	log := e.log.String()
	if n := strings.Count(log, `"internal error"`); n != 1 || !strings.Contains(log, er["id"].(string)) {
		t.Errorf("log has %d internal error lines, want 1 with id %s:\n%s", n, er["id"], log)
	}
}
