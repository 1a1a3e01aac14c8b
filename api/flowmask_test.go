package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/webhookd/webhookd/subscriptions/flows"
)

// Header names are case-insensitive: a PATCH that sends a masked value
// back under the name in another case keeps the stored value, rather
// than storing the mask as the header's value.
func TestFlowActionMaskedHeaderAnyCase(t *testing.T) {
	e := newEnv(t, nil)
	res := e.do("POST", "/api/flows?additional-fields%5Bflow%5D=definition", keyA, flowBody(goodDef))
	if res.status != http.StatusCreated {
		t.Fatalf("POST /api/flows = %d %s", res.status, res.body)
	}
	doc := res.doc(t)
	id := at(doc, "data.id").(string)
	a0, a1 := at(doc, "data.attributes.definition.actions.0.id").(string), at(doc, "data.attributes.definition.actions.1.id").(string)
	patch := fmt.Sprintf(`{"data":{"type":"flow-action","id":%q,"attributes":{"definition":{"id":%q,"type":"send-webhook",`+
		`"links":{"next":%q},"data":{"status":"manual","message":{"name":"ERP","url":"https://erp.example.net/v2",`+
		`"headers":{"x-shop-token":"t0********"},"body":"{}"}}}}}}`, a0, a0, a1)
	if res := e.do("PATCH", "/api/flow-actions/"+a0, keyA, patch); res.status != http.StatusOK {
		t.Fatalf("PATCH action = %d %s", res.status, res.body)
	}
	f, err := flows.NewStore(e.redis.Client(t)).Get(context.Background(), accountA, id)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Action(a0)
	for name, v := range a.Message.Headers {
		if v != "t0k3n-very-secret" {
			t.Errorf("stored header %s = %q after sending its mask back, want the stored value kept", name, v)
		}
	}
	if len(a.Message.Headers) != 1 {
		t.Errorf("stored headers = %d, want 1", len(a.Message.Headers))
	}
}
