package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

const rotSecret = "rotated-DO-NOT-LEAK-0123456789"

func rotationBody(attrs string) string {
	return `{"data":{"type":"webhook-secret-rotation","attributes":{` + attrs + `}}}`
}

// errorAt returns the status, code and source.pointer of the first error.
func errorAt(tb testing.TB, r response) (int, string, string) {
	tb.Helper()
	errs, _ := r.doc(tb)["errors"].([]any)
	if len(errs) == 0 {
		tb.Fatalf("no errors in %s", r.body)
	}
	e := errs[0].(map[string]any)
	ptr := ""
	if src, ok := e["source"].(map[string]any); ok {
		ptr, _ = src["pointer"].(string)
	}
	return r.status, e["code"].(string), ptr
}

func TestSecretRotationValidation(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(keyA, "rot", topicSMS)
	path := "/webhookd/webhooks/" + id + "/secret-rotations"
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	soon := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	later := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	far := time.Now().Add(40 * 24 * time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name, body, code, pointer string
		status                    int
	}{
		{"missing secret", rotationBody(`"promote_at":"` + soon + `"`), "invalid", "/data/attributes/secret_key", 400},
		{"null secret", rotationBody(`"secret_key":null`), "invalid", "/data/attributes/secret_key", 400},
		{"secret not a string", rotationBody(`"secret_key":12`), "invalid", "/data/attributes/secret_key", 400},
		{"short secret", rotationBody(`"secret_key":"short"`), "invalid", "/data/attributes/secret_key", 400},
		{"long secret", rotationBody(`"secret_key":"` + strings.Repeat("x", 257) + `"`), "invalid", "/data/attributes/secret_key", 400},
		{"promote in the past", rotationBody(`"secret_key":"` + rotSecret + `","promote_at":"` + past + `"`), "invalid", "/data/attributes/promote_at", 400},
		{"promote not a time", rotationBody(`"secret_key":"` + rotSecret + `","promote_at":"tomorrow"`), "invalid", "/data/attributes/promote_at", 400},
		{"retire in the past", rotationBody(`"secret_key":"` + rotSecret + `","retire_previous_at":"` + past + `"`), "invalid", "/data/attributes/retire_previous_at", 400},
		{"retire before promote", rotationBody(`"secret_key":"` + rotSecret + `","promote_at":"` + later + `","retire_previous_at":"` + soon + `"`), "invalid", "/data/attributes/retire_previous_at", 400},
		{"retire too far", rotationBody(`"secret_key":"` + rotSecret + `","retire_previous_at":"` + far + `"`), "invalid", "/data/attributes/retire_previous_at", 400},
		{"wrong type", `{"data":{"type":"webhook","attributes":{"secret_key":"` + rotSecret + `"}}}`, "conflict", "/data/type", 409},
		{"malformed JSON", `{"data":`, "parse_error", "/data", 400},
	} {
		res := e.do("POST", path, keyA, tc.body)
		status, code, ptr := errorAt(t, res)
		if status != tc.status || code != tc.code || ptr != tc.pointer {
			t.Errorf("%s: %d %s %s, want %d %s %s (%s)", tc.name, status, code, ptr, tc.status, tc.code, tc.pointer, res.body)
		}
		if strings.Contains(string(res.body), rotSecret) {
			t.Errorf("%s: the answer quotes the secret", tc.name)
		}
	}
	// Another account's webhook, and an unknown one, are 404.
	for _, p := range []struct{ key, path string }{{keyB, path}, {keyA, "/webhookd/webhooks/nope/secret-rotations"}} {
		if res := e.do("POST", p.path, p.key, rotationBody(`"secret_key":"`+rotSecret+`"`)); res.status != http.StatusNotFound {
			t.Errorf("POST %s as %s = %d, want 404", p.path, p.key, res.status)
		}
		if res := e.do("GET", p.path, p.key, ""); res.status != http.StatusNotFound {
			t.Errorf("GET %s as %s = %d, want 404", p.path, p.key, res.status)
		}
	}
}

func TestSecretRotationLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(keyA, "rot", topicSMS)
	path := "/webhookd/webhooks/" + id + "/secret-rotations"
	promote := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	res := e.do("POST", path+"/", keyA, rotationBody(fmt.Sprintf(`"secret_key":%q,"promote_at":%q`, rotSecret, promote.Format(time.RFC3339))))
	if res.status != http.StatusCreated {
		t.Fatalf("POST = %d %s, want 201", res.status, res.body)
	}
	if strings.Contains(string(res.body), rotSecret) || strings.Contains(string(res.body), "secret_key") {
		t.Fatalf("the rotation echoes its secret: %s", res.body)
	}
	data := res.doc(t)["data"].(map[string]any)
	attrs := data["attributes"].(map[string]any)
	rid := data["id"].(string)
	if data["type"] != "webhook-secret-rotation" || attrs["status"] != "pending" ||
		attrs["promote_at"] != promote.Format(time.RFC3339Nano) ||
		attrs["retire_previous_at"] != promote.Add(24*time.Hour).Format(time.RFC3339Nano) {
		t.Errorf("created rotation = %s; want pending, promote_at as given, retire 24 h later", res.body)
	}
	// A second one while the first is in its window: 409.
	if res := e.do("POST", path, keyA, rotationBody(`"secret_key":"another-secret-0123456789"`)); res.status != http.StatusConflict {
		t.Errorf("second rotation = %d %s, want 409", res.status, res.body)
	}
	// Listed, fetched, and shown in the delivery state.
	for _, p := range []string{path, path + "/"} {
		res := e.do("GET", p, keyA, "")
		list, _ := res.doc(t)["data"].([]any)
		if res.status != 200 || len(list) != 1 || list[0].(map[string]any)["id"] != rid {
			t.Errorf("GET %s = %d %s, want the one rotation", p, res.status, res.body)
		}
	}
	if res := e.do("GET", path+"/"+rid, keyA, ""); res.status != 200 {
		t.Errorf("GET one = %d %s", res.status, res.body)
	}
	if res := e.do("GET", path+"/other", keyA, ""); res.status != 404 {
		t.Errorf("GET an unknown rotation = %d, want 404", res.status)
	}
	st := e.do("GET", "/webhookd/webhooks/"+id+"/delivery-state", keyA, "")
	sr, _ := st.doc(t)["data"].(map[string]any)["attributes"].(map[string]any)["secret_rotation"].(map[string]any)
	if sr["rotation_id"] != rid || sr["primary"] != "previous" || sr["signing_secrets"] != 2.0 || sr["status"] != "pending" {
		t.Errorf("delivery state secret_rotation = %v; want the rotation, previous primary, 2 signing", sr)
	}
	// Klaviyo's webhook resource is unchanged by it.
	wh := e.do("GET", "/api/webhooks/"+id, keyA, "")
	if strings.Contains(string(wh.body), "rotation") {
		t.Errorf("Klaviyo's webhook resource mentions the rotation: %s", wh.body)
	}
	// PATCH secret_key cancels it.
	patch := `{"data":{"type":"webhook","id":"` + id + `","attributes":{"secret_key":"patched-secret-0123456789"}}}`
	if res := e.do("PATCH", "/api/webhooks/"+id, keyA, patch); res.status != 200 {
		t.Fatalf("PATCH = %d %s", res.status, res.body)
	}
	res = e.do("GET", path, keyA, "")
	if got := res.doc(t)["data"].([]any)[0].(map[string]any)["attributes"].(map[string]any)["status"]; got != "cancelled" {
		t.Errorf("after PATCH the rotation is %v, want cancelled", got)
	}
	st = e.do("GET", "/webhookd/webhooks/"+id+"/delivery-state", keyA, "")
	if v := st.doc(t)["data"].(map[string]any)["attributes"].(map[string]any)["secret_rotation"]; v != nil {
		t.Errorf("delivery state after PATCH: secret_rotation = %v, want null", v)
	}
	// Now a new rotation is allowed again; by default it promotes at once
	// and retires the previous secret 24 h later.
	res = e.do("POST", path, keyA, rotationBody(`"secret_key":"another-secret-0123456789"`))
	if res.status != http.StatusCreated {
		t.Fatalf("rotation after PATCH = %d %s, want 201", res.status, res.body)
	}
	attrs = res.doc(t)["data"].(map[string]any)["attributes"].(map[string]any)
	p, _ := time.Parse(time.RFC3339Nano, attrs["promote_at"].(string))
	rt, _ := time.Parse(time.RFC3339Nano, attrs["retire_previous_at"].(string))
	if attrs["status"] != "promoted" || rt.Sub(p) != 24*time.Hour || time.Since(p) > time.Minute {
		t.Errorf("default rotation = %v; want promoted now, retiring 24 h later", attrs)
	}
	if strings.Contains(e.log.String(), rotSecret) {
		t.Error("the access log carries the rotation's secret")
	}
}

// A body that is not JSON says where it breaks.
func TestMalformedJSONPosition(t *testing.T) {
	e := newEnv(t, nil)
	res := e.do("POST", "/api/webhooks", keyA, "{\"data\":\n  {\"type\": \"webhook\",, }}")
	errs := res.doc(t)["errors"].([]any)
	detail := errs[0].(map[string]any)["detail"].(string)
	if res.status != 400 || !strings.Contains(detail, "line 2, column 22 (byte offset 30)") {
		t.Errorf("malformed body: %d %q, want 400 naming line 2, column 22 (byte offset 30)", res.status, detail)
	}
	res = e.do("POST", "/api/webhooks", keyA, `{"data":`)
	detail = res.doc(t)["errors"].([]any)[0].(map[string]any)["detail"].(string)
	if !strings.Contains(detail, "line 1, column 9 (byte offset 8)") {
		t.Errorf("truncated body: %q, want the position of its end", detail)
	}
}
