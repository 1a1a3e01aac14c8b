package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/webhookd/webhookd/api"
)

// at walks a decoded JSON document along a dotted path of keys and
// array indexes ("data.0.id").
func at(v any, path string) any {
	for key := range strings.SplitSeq(path, ".") {
		switch node := v.(type) {
		case map[string]any:
			v = node[key]
		case []any:
			i := 0
			for _, c := range key {
				i = i*10 + int(c-'0')
			}
			if i >= len(node) {
				return nil
			}
			v = node[i]
		default:
			return nil
		}
	}
	return v
}

func topicLinkage(ids ...string) []any {
	out := []any{}
	for _, id := range ids {
		out = append(out, map[string]any{"type": "webhook-topic", "id": id})
	}
	return out
}

func TestCreate(t *testing.T) {
	e := newEnv(t, nil)
	// As the Node SDK sends it: application/json, unknown enabled attribute.
	body := strings.Replace(createBody("My Webhook", "https://user.example.com:8443/hook/path?q=1", topicSMS, topicOpen),
		`"name"`, `"enabled":false,"name"`, 1)
	res := e.doHeaders("POST", "/api/webhooks", body, map[string]string{
		"Authorization": "klaviyo-api-key " + keyA, "Content-Type": "application/json", "Accept": "application/json",
	}, false)
	if res.status != http.StatusCreated {
		t.Fatalf("POST = %d %s, want 201", res.status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/vnd.api+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	doc := res.doc(t)
	id, _ := at(doc, "data.id").(string)
	if id == "" {
		t.Fatalf("no data.id in %s", res.body)
	}
	want := map[string]any{
		"name":         "My Webhook",
		"description":  "d",
		"endpoint_url": "https://user.example.com:8443",
		"enabled":      true,
		"created_at":   at(doc, "data.attributes.created_at"),
		"updated_at":   at(doc, "data.attributes.updated_at"),
	}
	if diff := cmp.Diff(want, at(doc, "data.attributes")); diff != "" {
		t.Errorf("attributes (-want +got):\n%s", diff)
	}
	for _, k := range []string{"created_at", "updated_at"} {
		s, _ := at(doc, "data.attributes."+k).(string)
		if _, err := time.Parse("2006-01-02T15:04:05.999999-07:00", s); err != nil || !strings.HasSuffix(s, "+00:00") {
			t.Errorf("%s = %q, want a +00:00 date-time (%v)", k, s, err)
		}
	}
	wantRel := map[string]any{"webhook-topics": map[string]any{"data": topicLinkage(topicOpen, topicSMS)}}
	if diff := cmp.Diff(wantRel, at(doc, "data.relationships")); diff != "" {
		t.Errorf("relationships (-want +got):\n%s", diff)
	}
	self := e.srv.URL + "/api/webhooks/" + id + "/"
	if at(doc, "data.links.self") != self || at(doc, "links.self") != self {
		t.Errorf("links = %v / %v, want self %s", at(doc, "data.links"), at(doc, "links"), self)
	}
	if at(doc, "data.type") != "webhook" || doc["included"] != nil {
		t.Errorf("type %v, included %v", at(doc, "data.type"), doc["included"])
	}

	// The store has the full URL and the secret; the API shows neither.
	wh, err := e.store.Get(context.Background(), accountA, id)
	if err != nil || wh.EndpointURL != "https://user.example.com:8443/hook/path?q=1" || wh.Secret != secret {
		t.Errorf("stored %+v, %v", wh, err)
	}
}

func TestCreateInsecureAllowed(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.AllowInsecureEndpoints = true })
	for _, u := range []string{"http://127.0.0.1:9/x", "https://10.0.0.5/", "https://[::1]/", "http://localhost:8080/"} {
		res := e.do("POST", "/api/webhooks", keyA, createBody("x", u, topicSMS))
		if res.status != http.StatusCreated {
			t.Errorf("POST %s = %d %s, want 201", u, res.status, res.body)
			continue
		}
		e.do("DELETE", "/api/webhooks/"+at(res.doc(t), "data.id").(string), keyA, "")
	}
}

// TestRoutes requests every route in both slash forms.
func TestRoutes(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(keyA, "a", topicSMS)
	tests := []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/api/webhooks", "", 200},
		{"GET", "/api/webhooks/", "", 200},
		{"GET", "/api/webhooks/" + id, "", 200},
		{"GET", "/api/webhooks/" + id + "/", "", 200},
		{"PATCH", "/api/webhooks/" + id, `{"data":{"type":"webhook","id":"` + id + `","attributes":{"name":"b"}}}`, 200},
		{"PATCH", "/api/webhooks/" + id + "/", `{"data":{"type":"webhook","id":"` + id + `","attributes":{"name":"c"}}}`, 200},
		{"GET", "/api/webhook-topics", "", 200},
		{"GET", "/api/webhook-topics/", "", 200},
		{"GET", "/api/webhook-topics/event%3Aklaviyo.sent_sms", "", 200},
		{"GET", "/api/webhook-topics/event%3Aklaviyo.sent_sms/", "", 200},
		{"GET", "/api/webhook-topics/event:klaviyo.sent_sms", "", 200},
		{"GET", "/webhookd/webhooks/" + id + "/delivery-state", "", 200},
		{"POST", "/api/webhooks", createBody("p1", "https://example.com/", topicSMS), 201},
		{"POST", "/api/webhooks/", createBody("p2", "https://example.com/", topicSMS), 201},
	}
	for _, tt := range tests {
		res := e.do(tt.method, tt.path, keyA, tt.body)
		if res.status != tt.status {
			t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, res.status, res.body, tt.status)
		}
		if ct := res.header.Get("Content-Type"); ct != "application/vnd.api+json" {
			t.Errorf("%s %s: Content-Type = %q", tt.method, tt.path, ct)
		}
	}
	for _, path := range []string{"/api/webhooks/%s", "/api/webhooks/%s/"} {
		path = fmt.Sprintf(path, id)
		res := e.do("DELETE", path, keyA, "")
		if res.status != http.StatusNoContent || len(res.body) != 0 {
			t.Errorf("DELETE %s = %d %q, want 204 and no body", path, res.status, res.body)
		}
		if res := e.do("GET", path, keyA, ""); res.status != http.StatusNotFound {
			t.Errorf("GET %s after DELETE = %d, want 404", path, res.status)
		}
		if res := e.do("DELETE", path, keyA, ""); res.status != http.StatusNotFound {
			t.Errorf("DELETE %s twice = %d, want 404", path, res.status)
		}
		id = e.create(keyA, "d", topicSMS)
	}
}

func TestAuthForms(t *testing.T) {
	e := newEnv(t, nil)
	for _, auth := range []string{"Klaviyo-API-Key " + keyA, "klaviyo-api-key " + keyA, "Bearer " + keyA, "BEARER  " + keyA} {
		res := e.doHeaders("GET", "/api/webhooks", "", map[string]string{"Authorization": auth, "revision": ""}, false)
		if res.status != http.StatusOK {
			t.Errorf("Authorization %.20q… = %d %s, want 200", auth, res.status, res.body)
		}
	}
	for _, rev := range []string{"2024-07-15", "2026-07-15.pre", "garbage"} {
		res := e.doHeaders("GET", "/api/webhooks", "", map[string]string{"Authorization": "Klaviyo-API-Key " + keyA, "Revision": rev}, false)
		if res.status != http.StatusOK {
			t.Errorf("revision %q = %d, want 200", rev, res.status)
		}
	}
	res := e.doHeaders("GET", "/healthz", "", nil, true)
	if res.status != http.StatusOK || string(res.body) != "ok" {
		t.Errorf("GET /healthz = %d %q, want 200 ok", res.status, res.body)
	}
}

func TestListIncludeAndFields(t *testing.T) {
	e := newEnv(t, nil)
	id1 := e.create(keyA, "one", topicSMS, topicOpen)
	id2 := e.create(keyA, "two", topicSMS)
	e.create(keyB, "other", topicSMS)

	res := e.do("GET", "/api/webhooks?include=webhook-topics&fields[webhook-topic]=id", keyA, "")
	doc := res.doc(t)
	var ids []any
	for _, r := range doc["data"].([]any) {
		ids = append(ids, at(r, "id"))
	}
	if diff := cmp.Diff([]any{id1, id2}, ids); diff != "" {
		t.Errorf("list ids (-want +got):\n%s", diff)
	}
	wantLinks := map[string]any{"self": e.srv.URL + "/api/webhooks", "next": nil, "prev": nil}
	if diff := cmp.Diff(wantLinks, doc["links"]); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}
	var wantIncluded []any
	for _, topic := range []string{topicOpen, topicSMS} {
		wantIncluded = append(wantIncluded, map[string]any{"type": "webhook-topic", "id": topic,
			"links": map[string]any{"self": e.srv.URL + "/api/webhook-topics/" + topic + "/"}})
	}
	if diff := cmp.Diff(wantIncluded, doc["included"]); diff != "" {
		t.Errorf("included (-want +got):\n%s", diff)
	}

	// Sparse fieldsets as both SDKs encode them.
	for _, path := range []string{
		"/api/webhooks/" + id1 + "?fields[webhook]=name,enabled&include=webhook-topics",
		"/api/webhooks/" + id1 + "/?fields%5Bwebhook%5D=name%2Cenabled&include=webhook-topics",
		"/api/webhooks/" + id1 + "?fields[webhook]=name&fields[webhook]=enabled,id&include=webhook-topics",
	} {
		doc := e.do("GET", path, keyA, "").doc(t)
		if diff := cmp.Diff(map[string]any{"name": "one", "enabled": true}, at(doc, "data.attributes")); diff != "" {
			t.Errorf("GET %s attributes (-want +got):\n%s", path, diff)
		}
		if n := len(doc["included"].([]any)); n != 2 || at(doc, "data.relationships.webhook-topics.data") == nil {
			t.Errorf("GET %s: %d included, relationships %v", path, n, at(doc, "data.relationships"))
		}
	}
}

func TestTopics(t *testing.T) {
	e := newEnv(t, nil)
	doc := e.do("GET", "/api/webhook-topics?fields[webhook-topic]=id", keyA, "").doc(t)
	found := false
	for _, r := range doc["data"].([]any) {
		if at(r, "type") != "webhook-topic" || at(r, "links.self") != e.srv.URL+"/api/webhook-topics/"+at(r, "id").(string)+"/" {
			t.Errorf("topic resource %v", r)
		}
		if r.(map[string]any)["attributes"] != nil {
			t.Errorf("topic %v has attributes", r)
		}
		found = found || at(r, "id") == topicSMS
	}
	if !found || at(doc, "links.self") != e.srv.URL+"/api/webhook-topics" {
		t.Errorf("topics %s: want %s and links.self", e.do("GET", "/api/webhook-topics", keyA, "").body, topicSMS)
	}
	doc = e.do("GET", "/api/webhook-topics/event%3Aklaviyo.sent_sms", keyA, "").doc(t)
	want := map[string]any{"type": "webhook-topic", "id": topicSMS, "links": map[string]any{"self": e.srv.URL + "/api/webhook-topics/" + topicSMS + "/"}}
	if diff := cmp.Diff(want, doc["data"]); diff != "" {
		t.Errorf("GET topic (-want +got):\n%s", diff)
	}
}

func TestPatch(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(keyA, "orig", topicSMS)
	patch := func(attrs, rels string) map[string]any {
		t.Helper()
		body := `{"data":{"type":"webhook","id":"` + id + `","attributes":{` + attrs + `}` + rels + `}}`
		res := e.do("PATCH", "/api/webhooks/"+id, keyA, body)
		if res.status != http.StatusOK {
			t.Fatalf("PATCH %s = %d %s, want 200", body, res.status, res.body)
		}
		return res.doc(t)
	}
	topics := func(doc map[string]any) any { return at(doc, "data.relationships.webhook-topics.data") }

	doc := patch(`"name":"renamed"`, "")
	if at(doc, "data.attributes.name") != "renamed" || at(doc, "data.attributes.description") != "d" ||
		!cmp.Equal(topics(doc), topicLinkage(topicSMS)) {
		t.Errorf("rename: %v", doc["data"])
	}
	doc = patch(`"description":null,"name":null,"endpoint_url":null,"secret_key":null,"enabled":null`, "")
	if d, ok := at(doc, "data.attributes").(map[string]any)["description"]; !ok || d != nil || at(doc, "data.attributes.name") != "renamed" {
		t.Errorf("description null: %v", at(doc, "data.attributes"))
	}
	doc = patch(`"description":"new"`, `,"relationships":{"webhook-topics":{"data":[{"type":"webhook-topic","id":"`+topicOpen+`"}]}}`)
	if at(doc, "data.attributes.description") != "new" || !cmp.Equal(topics(doc), topicLinkage(topicOpen)) {
		t.Errorf("replace topics: %v", doc["data"])
	}
	doc = patch(`"enabled":false`, "")
	if at(doc, "data.attributes.enabled") != false {
		t.Errorf("disable: %v", at(doc, "data.attributes"))
	}
	doc = patch(`"enabled":true,"secret_key":"another-secret-0123456789","endpoint_url":"https://new.example.com/p"`, "")
	if at(doc, "data.attributes.enabled") != true || at(doc, "data.attributes.endpoint_url") != "https://new.example.com" {
		t.Errorf("re-enable: %v", at(doc, "data.attributes"))
	}
	wh, err := e.store.Get(context.Background(), accountA, id)
	if err != nil || wh.Secret != "another-secret-0123456789" || !wh.Enabled || !slices.Equal(wh.Topics, []string{topicOpen}) {
		t.Errorf("stored %+v, %v", wh, err)
	}
	doc = patch(``, "")
	if at(doc, "data.attributes.name") != "renamed" || !cmp.Equal(topics(doc), topicLinkage(topicOpen)) {
		t.Errorf("empty patch changed %v", doc["data"])
	}
}

func TestDeliveryState(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(keyA, "a", topicSMS)
	doc := e.do("GET", "/webhookd/webhooks/"+id+"/delivery-state/", keyA, "").doc(t) // the trailing-slash form
	want := map[string]any{
		"enabled": true, "error_since": nil, "consecutive_failures": float64(0), "last_status": nil,
		"last_error": nil, "last_failure_at": nil, "last_success_at": nil, "next_attempt_at": nil,
		"disabled_at": nil, "disabled_reason": nil, "undeliverable_reason": nil,
		"in_error": false, "last_auto_disabled_at": nil, "last_auto_disabled_reason": nil,
		"backlog": nil, "in_flight": nil, // no dispatcher behind this API
		"secret_rotation": nil,
	}
	if diff := cmp.Diff(want, at(doc, "data.attributes")); diff != "" {
		t.Errorf("delivery state (-want +got):\n%s", diff)
	}
	if at(doc, "data.type") != "webhook-delivery-state" || at(doc, "data.id") != id {
		t.Errorf("resource %v", doc["data"])
	}

	// The dispatcher reports the webhook undeliverable, then deliverable.
	const reason = "consumer: maximum consumers limit reached"
	for _, r := range []string{reason, ""} {
		if err := e.store.SetUndeliverable(context.Background(), id, r); err != nil {
			t.Fatal(err)
		}
		var want any
		if r != "" {
			want = r
		}
		doc = e.do("GET", "/webhookd/webhooks/"+id+"/delivery-state", keyA, "").doc(t)
		if got := at(doc, "data.attributes.undeliverable_reason"); got != want || at(doc, "data.attributes.enabled") != true {
			t.Errorf("after SetUndeliverable(%q): undeliverable_reason = %v, enabled = %v, want %v and true",
				r, got, at(doc, "data.attributes.enabled"), want)
		}
	}
}

func TestAccessLog(t *testing.T) {
	e := newEnv(t, nil)
	e.create(keyA, "a", topicSMS)
	e.do("GET", "/api/webhooks?include=webhook-topics", keyA, "")
	log := e.log.String()
	for _, want := range []string{`"method":"POST"`, `"path":"/api/webhooks"`, `"status":201`, `"account_id":"` + accountA + `"`, `"duration_ms":`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
	for _, leak := range []string{secret, keyA, "example.com"} {
		if strings.Contains(log, leak) {
			t.Errorf("log contains %q:\n%s", leak, log)
		}
	}
}
