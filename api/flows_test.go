package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// flowBody is a FlowCreateQuery with the given definition.
func flowBody(def string) string {
	return `{"data":{"type":"flow","attributes":{"name":"Order placed","definition":` + def + `}}}`
}

const (
	goodMsg = `{"name":"ERP","url":"https://erp.example.net/hooks/order","headers":{"X-Shop-Token":"t0k3n-very-secret"},` +
		`"body":"{\"email\":\"{{ person.email }}\",\"total\":{{ event.value }}}"}`
	goodDef = `{"triggers":[{"type":"metric","id":"Rk7x2Q","trigger_filter":null}],"profile_filter":null,` +
		`"actions":[{"temporary_id":"wh-1","type":"send-webhook","links":{"next":"wh-2"},"data":{"status":"draft","message":` + goodMsg + `}},` +
		`{"temporary_id":"wh-2","type":"send-webhook","links":{"next":null},"data":{"status":"live","message":` + goodMsg + `}}],` +
		`"entry_action_id":"wh-1","reentry_criteria":{"duration":0,"unit":"alltime"}}`
)

// mustCreateFlow creates the flow of definition def in keyA's account
// and returns its id and its actions' ids.
func mustCreateFlow(t *testing.T, e *env, def string) (id string, actionIDs []string) {
	t.Helper()
	res := e.do("POST", "/api/flows", keyA, flowBody(def))
	if res.status != http.StatusCreated {
		t.Fatalf("POST /api/flows = %d %s", res.status, res.body)
	}
	doc := res.doc(t)
	for _, r := range at(doc, "data.relationships.flow-actions.data").([]any) {
		actionIDs = append(actionIDs, at(r, "id").(string))
	}
	return at(doc, "data.id").(string), actionIDs
}

func TestFlowLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	res := e.do("POST", "/api/flows?additional-fields%5Bflow%5D=definition", keyA, flowBody(goodDef))
	if res.status != http.StatusCreated {
		t.Fatalf("POST /api/flows = %d %s", res.status, res.body)
	}
	if strings.Contains(string(res.body), "t0k3n-very-secret") {
		t.Errorf("create answer shows a header value: %s", res.body)
	}
	doc := res.doc(t)
	id := at(doc, "data.id").(string)
	a0, a1 := at(doc, "data.attributes.definition.actions.0.id"), at(doc, "data.attributes.definition.actions.1.id")
	for path, want := range map[string]any{
		"data.type": "flow", "data.attributes.status": "draft", "data.attributes.trigger_type": "Metric",
		"data.attributes.definition.entry_action_id":                             a0,
		"data.attributes.definition.actions.0.links.next":                        a1,
		"data.attributes.definition.actions.1.links.next":                        nil,
		"data.attributes.definition.actions.0.temporary_id":                      nil,
		"data.attributes.definition.triggers.0.id":                               "Rk7x2Q",
		"data.attributes.definition.actions.0.data.message.headers.X-Shop-Token": "t0********",
		"data.relationships.flow-actions.data.1.id":                              a1,
	} {
		if got := at(doc, path); got != want {
			t.Errorf("create: %s = %v, want %v", path, got, want)
		}
	}

	// Lists carry no definition; another account sees nothing.
	res = e.do("GET", "/api/flows", keyA, "")
	if n := len(at(res.doc(t), "data").([]any)); n != 1 || at(res.doc(t), "data.0.attributes.definition") != nil {
		t.Errorf("GET /api/flows = %s", res.body)
	}
	if res := e.do("GET", "/api/flows/"+id, keyB, ""); res.status != http.StatusNotFound {
		t.Errorf("GET another account's flow = %d, want 404", res.status)
	}
	if res := e.do("GET", "/api/flow-actions/"+a0.(string), keyB, ""); res.status != http.StatusNotFound {
		t.Errorf("GET another account's action = %d, want 404", res.status)
	}
	if res := e.do("GET", "/api/flows", keyB, ""); len(at(res.doc(t), "data").([]any)) != 0 {
		t.Errorf("GET /api/flows (B) = %s", res.body)
	}

	// Status: the flow and all its actions.
	res = e.do("PATCH", "/api/flows/"+id, keyA, `{"data":{"type":"flow","id":"`+id+`","attributes":{"status":"live"}}}`)
	if res.status != http.StatusOK || at(res.doc(t), "data.attributes.status") != "live" {
		t.Fatalf("PATCH status = %d %s", res.status, res.body)
	}
	res = e.do("GET", "/api/flows/"+id+"/flow-actions", keyA, "")
	if at(res.doc(t), "data.0.attributes.definition.data.status") != "live" || at(res.doc(t), "data.1.relationships.flow.data.id") != id {
		t.Errorf("flow-actions after PATCH live = %s", res.body)
	}

	// Update an action, sending its masked header back unchanged.
	patch := fmt.Sprintf(`{"data":{"type":"flow-action","id":%q,"attributes":{"definition":{"id":%q,"type":"send-webhook",`+
		`"links":{"next":%q},"data":{"status":"manual","message":{"name":"ERP v2","url":"https://erp.example.net/v2",`+
		`"headers":{"X-Shop-Token":"t0********","X-New":"n3w-value-123"},"body":"{}"}}}}}}`, a0, a0, a1)
	res = e.do("PATCH", "/api/flow-actions/"+a0.(string), keyA, patch)
	if res.status != http.StatusOK || at(res.doc(t), "data.attributes.definition.data.message.name") != "ERP v2" ||
		at(res.doc(t), "data.attributes.definition.data.status") != "manual" {
		t.Fatalf("PATCH action = %d %s", res.status, res.body)
	}
	counts := e.do("GET", "/webhookd/flow-actions/"+a0.(string)+"/counts", keyA, "")
	if counts.status != http.StatusOK || at(counts.doc(t), "data.attributes.delivered") != float64(0) {
		t.Errorf("counts = %d %s", counts.status, counts.body)
	}

	if res := e.do("DELETE", "/api/flows/"+id, keyA, ""); res.status != http.StatusNoContent {
		t.Fatalf("DELETE = %d %s", res.status, res.body)
	}
	if res := e.do("GET", "/api/flow-actions/"+a0.(string), keyA, ""); res.status != http.StatusNotFound {
		t.Errorf("GET action of a deleted flow = %d, want 404", res.status)
	}
	if strings.Contains(e.log.String(), "t0k3n") {
		t.Error("a header value was logged")
	}
}

// Everything webhookd does not implement exactly is refused with a
// pointer at the field.
func TestFlowValidation(t *testing.T) {
	e := newEnv(t, nil)
	const defp = "/data/attributes/definition"
	act := func(extra string) string {
		return `{"temporary_id":"a","type":"send-webhook","links":{"next":null},"data":{"status":"live","message":` + extra + `}}`
	}
	def := func(triggers, actions string) string {
		return `{"triggers":` + triggers + `,"profile_filter":null,"actions":` + actions + `,"entry_action_id":"a"}`
	}
	metric := `[{"type":"metric","id":"M1"}]`
	msg := func(url, headers, body string) string {
		return fmt.Sprintf(`{"url":%q,"headers":%s,"body":%q}`, url, headers, body)
	}
	ok := msg("https://x.example/h", `{}`, `{}`)
	for _, tc := range []struct{ name, def, pointer string }{
		{"list trigger", def(`[{"type":"list","id":"L1"}]`, "["+act(ok)+"]"), defp + "/triggers/0/type"},
		{"two triggers", def(`[{"type":"metric","id":"a"},{"type":"metric","id":"b"}]`, "["+act(ok)+"]"), defp + "/triggers"},
		{"trigger filter", def(`[{"type":"metric","id":"M1","trigger_filter":{"condition_groups":[]}}]`, "["+act(ok)+"]"), defp + "/triggers/0/trigger_filter"},
		{"profile filter", `{"triggers":` + metric + `,"profile_filter":{"condition_groups":[]},"actions":[` + act(ok) + `],"entry_action_id":"a"}`, defp + "/profile_filter"},
		{"email action", def(metric, `[{"temporary_id":"a","type":"send-email","data":{}}]`), defp + "/actions/0/type"},
		{"id on create", def(metric, `[{"id":"x","temporary_id":"a","type":"send-webhook","data":{"message":`+ok+`}}]`), defp + "/actions/0/id"},
		{"split link", def(metric, `[{"temporary_id":"a","type":"send-webhook","links":{"next_if_true":"b"},"data":{"message":`+ok+`}}]`), defp + "/actions/0/links/next_if_true"},
		{"bad status", def(metric, `[{"temporary_id":"a","type":"send-webhook","data":{"status":"paused","message":`+ok+`}}]`), defp + "/actions/0/data/status"},
		{"http url", def(metric, "["+act(msg("http://x.example/h", `{}`, `{}`))+"]"), defp + "/actions/0/data/message/url"},
		{"private url", def(metric, "["+act(msg("https://127.0.0.1/h", `{}`, `{}`))+"]"), defp + "/actions/0/data/message/url"},
		{"host header", def(metric, "["+act(msg("https://x.example/h", `{"Host":"evil"}`, `{}`))+"]"), defp + "/actions/0/data/message/headers/Host"},
		{"hop-by-hop header", def(metric, "["+act(msg("https://x.example/h", `{"Connection":"close"}`, `{}`))+"]"), defp + "/actions/0/data/message/headers/Connection"},
		{"banned tag", def(metric, "["+act(msg("https://x.example/h", `{}`, `{% include "x" %}`))+"]"), defp + "/actions/0/data/message/body"},
		{"not json", def(metric, "["+act(msg("https://x.example/h", `{}`, `{"e": {{ person.email }}}`))+"]"), defp + "/actions/0/data/message/body"},
		{"unknown entry", `{"triggers":` + metric + `,"actions":[` + act(ok) + `],"entry_action_id":"zz"}`, defp + "/entry_action_id"},
		{"dangling next", def(metric, `[{"temporary_id":"a","type":"send-webhook","links":{"next":"b"},"data":{"message":`+ok+`}}]`), defp + "/actions/0/links/next"},
		{"cycle", def(metric, `[{"temporary_id":"a","type":"send-webhook","links":{"next":"b"},"data":{"message":`+ok+`}},{"temporary_id":"b","type":"send-webhook","links":{"next":"a"},"data":{"message":`+ok+`}}]`), defp + "/actions/0/links/next"},
		{"duplicate temporary id", def(metric, "["+act(ok)+","+act(ok)+"]"), defp + "/actions/1/temporary_id"},
		{"reentry window", `{"triggers":` + metric + `,"actions":[` + act(ok) + `],"entry_action_id":"a","reentry_criteria":{"duration":1,"unit":"day"}}`, defp + "/reentry_criteria"},
		{"camelCase key", `{"triggers":` + metric + `,"actions":[` + act(ok) + `],"entryActionId":"a"}`, defp + "/entryActionId"},
	} {
		res := e.do("POST", "/api/flows", keyA, flowBody(tc.def))
		if res.status != http.StatusBadRequest {
			t.Errorf("%s: POST = %d %s, want 400", tc.name, res.status, res.body)
			continue
		}
		var pointers []string
		for _, er := range at(res.doc(t), "errors").([]any) {
			p, _ := at(er, "source.pointer").(string)
			pointers = append(pointers, p)
		}
		found := false
		for _, p := range pointers {
			found = found || p == tc.pointer
		}
		if !found {
			t.Errorf("%s: pointers %v, want %s (%s)", tc.name, pointers, tc.pointer, res.body)
		}
	}

	// A template error names its line.
	res := e.do("POST", "/api/flows", keyA, flowBody(def(metric, "["+act(msg("https://x.example/h", `{}`, "{\n\"a\": {% if %}\n}"))+"]")))
	if d, _ := at(res.doc(t), "errors.0.detail").(string); !strings.Contains(d, "line 2") {
		t.Errorf("template error detail = %q, want it to name line 2", d)
	}
	// Unimplemented query parameters are refused too.
	if res := e.do("GET", "/api/flows?sort=-created", keyA, ""); res.status != http.StatusBadRequest ||
		at(res.doc(t), "errors.0.source.parameter") != "sort" {
		t.Errorf("GET ?sort = %d %s, want 400 on sort", res.status, res.body)
	}
}

// PATCH requests are validated with pointers too.
func TestFlowPatchValidation(t *testing.T) {
	e := newEnv(t, nil)
	id, ids := mustCreateFlow(t, e, goodDef)
	a0 := ids[0]
	for _, tc := range []struct {
		name, path, body string
		status           int
		pointer          string
	}{
		{"bad flow status", "/api/flows/" + id, `{"data":{"type":"flow","id":"` + id + `","attributes":{"status":"paused"}}}`, 400, "/data/attributes/status"},
		{"flow id mismatch", "/api/flows/" + id, `{"data":{"type":"flow","id":"nope","attributes":{"status":"live"}}}`, 409, "/data/id"},
		{"flow name change", "/api/flows/" + id, `{"data":{"type":"flow","id":"` + id + `","attributes":{"status":"live","name":"x"}}}`, 400, "/data/attributes/name"},
		{"relink an action", "/api/flow-actions/" + a0, `{"data":{"type":"flow-action","id":"` + a0 + `","attributes":{"definition":` +
			`{"type":"send-webhook","links":{"next":null},"data":{"status":"live","message":` + goodMsg + `}}}}}`, 400, "/data/attributes/definition/links/next"},
		{"action type", "/api/flow-actions/" + a0, `{"data":{"type":"flow-action","id":"` + a0 + `","attributes":{"definition":` +
			`{"type":"time-delay","data":{}}}}}`, 400, "/data/attributes/definition/type"},
		{"action bad url", "/api/flow-actions/" + a0, `{"data":{"type":"flow-action","id":"` + a0 + `","attributes":{"definition":` +
			`{"type":"send-webhook","data":{"status":"live","message":{"url":"ftp://x","body":"{}"}}}}}}`, 400, "/data/attributes/definition/data/message/url"},
	} {
		res := e.do("PATCH", tc.path, keyA, tc.body)
		if res.status != tc.status || at(res.doc(t), "errors.0.source.pointer") != tc.pointer {
			t.Errorf("%s: PATCH = %d %s, want %d at %s", tc.name, res.status, res.body, tc.status, tc.pointer)
		}
	}
	if res := e.do("GET", "/api/flows/"+id+"/flow-actions", keyB, ""); res.status != http.StatusNotFound {
		t.Errorf("another account's flow-actions = %d, want 404", res.status)
	}
	if res := e.do("PATCH", "/api/flow-actions/"+a0, keyB, `{"data":{"type":"flow-action","id":"`+a0+`","attributes":{"definition":`+
		`{"type":"send-webhook","data":{"status":"live","message":`+goodMsg+`}}}}}`); res.status != http.StatusNotFound {
		t.Errorf("PATCH another account's action = %d, want 404", res.status)
	}
}

func TestFlowRelatedRoutes(t *testing.T) {
	e := newEnv(t, nil)
	res := e.do("POST", "/api/flows", keyA, flowBody(goodDef))
	if res.status != http.StatusCreated {
		t.Fatalf("POST = %d %s", res.status, res.body)
	}
	id := at(res.doc(t), "data.id").(string)
	a1 := at(res.doc(t), "data.relationships.flow-actions.data.1.id").(string)
	res = e.do("GET", "/api/flows/"+id+"/relationships/flow-actions?page%5Bsize%5D=1", keyA, "")
	doc := res.doc(t)
	if res.status != http.StatusOK || at(doc, "data.0.type") != "flow-action" || len(at(doc, "data").([]any)) != 1 || at(doc, "links.next") == nil {
		t.Errorf("relationships/flow-actions page 1 = %d %s", res.status, res.body)
	}
	next, _ := at(doc, "links.next").(string)
	res = e.do("GET", strings.TrimPrefix(next, e.srv.URL), keyA, "")
	if at(res.doc(t), "data.0.id") != a1 || at(res.doc(t), "links.next") != nil {
		t.Errorf("relationships/flow-actions page 2 = %s", res.body)
	}
	res = e.do("GET", "/api/flow-actions/"+a1+"/flow", keyA, "")
	if res.status != http.StatusOK || at(res.doc(t), "data.id") != id {
		t.Errorf("flow-actions/{id}/flow = %d %s", res.status, res.body)
	}
	if res := e.do("GET", "/api/flow-actions/"+a1+"/flow", keyB, ""); res.status != http.StatusNotFound {
		t.Errorf("another account's flow-actions/{id}/flow = %d, want 404", res.status)
	}
}

// Every route answers with a trailing slash too, as Klaviyo's older
// SDK revisions call them: the flow routes were registered without.
func TestFlowRoutesTrailingSlash(t *testing.T) {
	e := newEnv(t, nil)
	res := e.do("POST", "/api/flows/", keyA, flowBody(goodDef))
	if res.status != http.StatusCreated {
		t.Fatalf("POST /api/flows/ = %d %s", res.status, res.body)
	}
	id := at(res.doc(t), "data.id").(string)
	for _, path := range []string{"/api/flows/", "/api/flows/" + id + "/", "/api/flows/" + id + "/flow-actions/"} {
		if res := e.do("GET", path, keyA, ""); res.status != http.StatusOK {
			t.Errorf("GET %s = %d %s", path, res.status, res.body)
		}
	}
}

// deleteFlowAction: 204 with no body; the chain closes over the action
// (here the entry action, so the next one becomes the entry); the
// action, its counts and its activity are gone; another account's
// action is a 404; a flow's only action is a 409.
func TestDeleteFlowAction(t *testing.T) {
	e := newEnv(t, nil)
	id, ids := mustCreateFlow(t, e, goodDef)
	a0, a1 := ids[0], ids[1]
	if res := e.do("DELETE", "/api/flow-actions/"+a0, keyB, ""); res.status != http.StatusNotFound {
		t.Errorf("DELETE another account's action = %d, want 404", res.status)
	}
	res := e.do("DELETE", "/api/flow-actions/"+a0, keyA, "")
	if res.status != http.StatusNoContent || len(res.body) != 0 {
		t.Fatalf("DELETE /api/flow-actions/%s = %d %q, want 204 with no body", a0, res.status, res.body)
	}
	res = e.do("GET", "/api/flows/"+id+"?additional-fields%5Bflow%5D=definition", keyA, "")
	doc := res.doc(t)
	if n := len(at(doc, "data.attributes.definition.actions").([]any)); n != 1 ||
		at(doc, "data.attributes.definition.entry_action_id") != a1 || at(doc, "data.relationships.flow-actions.data.0.id") != a1 {
		t.Errorf("flow after deleting its entry action = %s, want %s its only action and entry", res.body, a1)
	}
	for _, path := range []string{"/api/flow-actions/" + a0, "/webhookd/flow-actions/" + a0 + "/counts", "/webhookd/flow-actions/" + a0 + "/activity"} {
		if res := e.do("GET", path, keyA, ""); res.status != http.StatusNotFound {
			t.Errorf("GET %s after delete = %d, want 404", path, res.status)
		}
	}
	if res := e.do("DELETE", "/api/flow-actions/"+a0+"/", keyA, ""); res.status != http.StatusNotFound {
		t.Errorf("DELETE a deleted action = %d, want 404", res.status)
	}
	res = e.do("DELETE", "/api/flow-actions/"+a1, keyA, "")
	if res.status != http.StatusConflict || !strings.Contains(string(res.body), "DELETE /api/flows/{id}") {
		t.Errorf("DELETE the only action = %d %s, want 409 pointing at deleting the flow", res.status, res.body)
	}
	if res := e.do("GET", "/api/flow-actions/"+a1, keyA, ""); res.status != http.StatusOK {
		t.Errorf("GET the only action after the refused delete = %d, want 200", res.status)
	}
}

// In a chain of three, deleting the middle action links the first to
// the third.
func TestDeleteFlowActionMiddle(t *testing.T) {
	e := newEnv(t, nil)
	act := func(temp, next string) string {
		return `{"temporary_id":"` + temp + `","type":"send-webhook","links":{"next":` + next + `},"data":{"status":"live","message":` + goodMsg + `}}`
	}
	def := `{"triggers":[{"type":"metric","id":"Rk7x2Q"}],"profile_filter":null,"entry_action_id":"x",` +
		`"actions":[` + act("x", `"y"`) + `,` + act("y", `"z"`) + `,` + act("z", "null") + `]}`
	id, ids := mustCreateFlow(t, e, def)
	x, y, z := ids[0], ids[1], ids[2]
	if res := e.do("DELETE", "/api/flow-actions/"+y, keyA, ""); res.status != http.StatusNoContent {
		t.Fatalf("DELETE middle action = %d %s", res.status, res.body)
	}
	res := e.do("GET", "/api/flow-actions/"+x, keyA, "")
	if got := at(res.doc(t), "data.attributes.definition.links.next"); got != z {
		t.Errorf("first action's links.next = %v, want %v", got, z)
	}
	res = e.do("GET", "/api/flows/"+id+"/relationships/flow-actions", keyA, "")
	if n := len(at(res.doc(t), "data").([]any)); n != 2 {
		t.Errorf("flow's actions after delete = %s, want 2", res.body)
	}
}

// A trigger id that is a topic must be in the account's catalog (built
// in, seen on the stream or declared), else the flow would never fire:
// 400 at the trigger's id, worded as webhooks' unknown topic. A metric
// id (neither '.' nor ':') is accepted as Klaviyo's shape has it.
func TestFlowTriggerTopic(t *testing.T) {
	e := newEnv(t, nil)
	def := func(trigger string) string {
		return flowBody(strings.Replace(goodDef, `"id":"Rk7x2Q"`, fmt.Sprintf(`"id":%q`, trigger), 1))
	}
	const ptr = "/data/attributes/definition/triggers/0/id"
	decl := `{"data":{"type":"webhook-topic","id":"event:acme.signup"}}`
	if res := e.do("POST", "/webhookd/webhook-topics", keyA, decl); res.status != http.StatusCreated {
		t.Fatalf("declare topic = %d %s", res.status, res.body)
	}
	for _, tc := range []struct{ name, key, trigger string }{
		{"unknown topic", keyA, "event:acme.nope"},
		{"colon, no dot", keyA, "event:placed_order"},
		{"another account's declared topic", keyB, "event:acme.signup"},
	} {
		res := e.do("POST", "/api/flows", tc.key, def(tc.trigger))
		doc := res.doc(t)
		detail, _ := at(doc, "errors.0.detail").(string)
		if res.status != http.StatusBadRequest || at(doc, "errors.0.source.pointer") != ptr || at(doc, "errors.0.code") != "invalid" ||
			!strings.HasPrefix(detail, fmt.Sprintf("Unknown webhook topic %q for this account.", tc.trigger)) ||
			!strings.Contains(detail, "POST /webhookd/webhook-topics") {
			t.Errorf("%s: POST = %d %s, want 400 at %s naming the topic and how to declare it", tc.name, res.status, res.body, ptr)
		}
	}
	for _, tc := range []struct{ name, key, trigger string }{
		{"built-in topic", keyA, "event:klaviyo.sent_sms"},
		{"declared topic", keyA, "event:acme.signup"},
		{"metric id", keyB, "Rk7x2Q"},
	} {
		if res := e.do("POST", "/api/flows", tc.key, def(tc.trigger)); res.status != http.StatusCreated {
			t.Errorf("%s: POST = %d %s, want 201", tc.name, res.status, res.body)
		}
	}
	if res := e.do("GET", "/api/flows", keyA, ""); len(at(res.doc(t), "data").([]any)) != 2 {
		t.Errorf("account A's flows = %s, want the two accepted ones only", res.body)
	}
}
