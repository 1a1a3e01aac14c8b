package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/webhookd/webhookd/dispatcher/activity"
	dflows "github.com/webhookd/webhookd/dispatcher/flows"
)

// DELETE /api/flow-actions/{id} on a live action: on both replicas it
// gets no request for a later event, its retry already queued on
// EVENTS_FLOWS_RETRY is recorded as skipped (action_not_live, "deleted")
// without a request, its counters are not made again, and the flow's
// other action, now its entry, goes on delivering.
func TestFlowActionDeleteStopsDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	rec := &recorder{}
	cfg := func(c *dflows.Config) { c.RetryBase = 2 * time.Second; c.Activity = rec }
	d1, d2 := e.startFlows(cfg), e.startFlows(cfg)
	api := e.apiServer()
	failing, ok := newReceiver(t, http.StatusServiceUnavailable), newReceiver(t, http.StatusOK)

	declareTopic(t, api, topicOrder)
	act := func(temp, next, url string) string {
		return fmt.Sprintf(`{"temporary_id":%q,"type":"send-webhook","links":{"next":%s},"data":{"status":"live",`+
			`"message":{"name":%q,"url":%q,"headers":{},"body":"{\"id\": \"{{ event.id }}\"}"}}}`, temp, next, temp, url)
	}
	def := fmt.Sprintf(`{"data":{"type":"flow","attributes":{"name":"two","definition":{"triggers":[{"type":"metric","id":%q}],`+
		`"profile_filter":null,"entry_action_id":"first","actions":[%s,%s]}}}}`,
		topicOrder, act("first", `"second"`, failing.srv.URL), act("second", "null", ok.srv.URL))
	flowID, ids := createLiveFlow(t, api, def, d1, d2)
	first, second := ids[0], ids[1]

	e.publishRaw(topicOrder, orderEvent("ev-before", 1, 0), "ev-before")
	waitCounts(t, api, first, map[string]float64{"waiting_to_retry": 1})
	waitCounts(t, api, second, map[string]float64{"delivered": 1})

	if st := call(t, "DELETE", api+"/api/flow-actions/"+first, "", nil); st != http.StatusNoContent {
		t.Fatalf("DELETE /api/flow-actions/%s = %d, want 204", first, st)
	}
	for _, d := range []*dflows.Delivery{d1, d2} {
		waitFor(t, 10*time.Second, "the deleted action out of every replica's index", func() bool { return !d.Sends(first) && d.Sends(second) })
	}
	e.publishRaw(topicOrder, orderEvent("ev-after", 1, 0), "ev-after")
	waitCounts(t, api, second, map[string]float64{"delivered": 2})

	// The queued retry of ev-before comes due after the delete (or, on a
	// slow machine, a later one does): recorded, not sent.
	var skipped activity.Attempt
	waitFor(t, 60*time.Second, "the queued retry recorded as not sent", func() bool {
		for _, a := range rec.attempts() {
			if a.WebhookID == first && a.ErrorClass == activity.ClassNotLive {
				skipped = a
				return true
			}
		}
		return false
	})
	if !strings.Contains(skipped.Error, "deleted") || skipped.Status != 0 || skipped.Attempt < 2 ||
		len(skipped.ExternalIDs) != 1 || skipped.ExternalIDs[0] != "ev-before" || skipped.FlowID != flowID {
		t.Errorf("skipped retry = %+v, want ev-before's retry, no request, the reason naming the deletion", skipped)
	}
	// Every request to the deleted action was one of ev-before's attempts
	// before the skipped one; ev-after never reached it.
	got := failing.got()
	if len(got) != skipped.Attempt-1 {
		t.Errorf("the deleted action's receiver got %d requests, want %d (the attempts before the skipped retry)", len(got), skipped.Attempt-1)
	}
	for _, r := range got {
		var body struct{ ID string }
		if err := json.Unmarshal(r.body, &body); err != nil || body.ID != "ev-before" {
			t.Errorf("the deleted action's receiver got %s, want only ev-before", r.body)
		}
	}
	if n := len(ok.got()); n != 2 {
		t.Errorf("the remaining action's receiver got %d requests, want 2", n)
	}
	// Its counters went with it and the skipped retry did not make them
	// again; the API answers 404 for the action.
	if n, err := e.redis.Client(t).Exists(context.Background(), "flow:counts:"+first).Result(); err != nil || n != 0 {
		t.Errorf("the deleted action's counters exist (%d, %v), want gone", n, err)
	}
	if st := call(t, "GET", api+"/webhookd/flow-actions/"+first+"/counts", "", nil); st != http.StatusNotFound {
		t.Errorf("GET the deleted action's counts = %d, want 404", st)
	}
	var flow struct {
		Data struct {
			Attributes struct {
				Definition struct {
					EntryActionID string `json:"entry_action_id"`
				}
			}
		}
	}
	if st := call(t, "GET", api+"/api/flows/"+flowID+"?additional-fields%5Bflow%5D=definition", "", &flow); st != http.StatusOK ||
		flow.Data.Attributes.Definition.EntryActionID != second {
		t.Errorf("the flow's entry_action_id = %q (%d), want %s", flow.Data.Attributes.Definition.EntryActionID, st, second)
	}
}
