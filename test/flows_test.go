package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/dispatcher/activity"
	dflows "github.com/webhookd/webhookd/dispatcher/flows"
	"github.com/webhookd/webhookd/subscriptions/flows"
)

const topicOrder = "event:klaviyo.placed_order"

// startFlows starts one more replica of flow delivery on e's servers,
// stopped when the test ends.
func (e *env) startFlows(mutate func(*dflows.Config)) *dflows.Delivery {
	e.t.Helper()
	js, rdb := e.replicaConns()
	cfg := dflows.Config{AllowInsecureEndpoints: true, IndexPoll: 20 * time.Millisecond, DeliveryTimeout: 2 * time.Second}
	if mutate != nil {
		mutate(&cfg)
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel).With().Str("component", "flows").Logger()
	d := dflows.New(cfg, js, flows.NewStore(rdb), log)
	e.runUntilEnd("flows Delivery.Run", d.Run)
	return d
}

// receiver is a flow webhook endpoint answering with the statuses of
// answer in turn (the last one repeats), recording every request.
type receiver struct {
	srv    *httptest.Server
	answer []int
	delay  time.Duration

	mu       sync.Mutex
	requests []recorded
	cur      atomic.Int32
	peak     atomic.Int32
}

type recorded struct {
	header http.Header
	body   []byte
}

func newReceiver(t testing.TB, answer ...int) *receiver {
	r := &receiver{answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := r.cur.Add(1)
		defer r.cur.Add(-1)
		for p := r.peak.Load(); n > p && !r.peak.CompareAndSwap(p, n); p = r.peak.Load() {
		}
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		i := len(r.requests)
		r.requests = append(r.requests, recorded{header: req.Header.Clone(), body: body})
		r.mu.Unlock()
		if r.delay > 0 {
			time.Sleep(r.delay)
		}
		w.WriteHeader(r.answer[min(i, len(r.answer)-1)])
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.requests...)
}

// declareTopic puts a custom topic in the test account's catalog, as a
// flow's topic trigger needs.
func declareTopic(t testing.TB, api, topic string) {
	t.Helper()
	decl := fmt.Sprintf(`{"data":{"type":"webhook-topic","id":%q}}`, topic)
	if st := call(t, "POST", api+"/webhookd/webhook-topics", decl, nil); st != http.StatusCreated && st != http.StatusOK {
		t.Fatalf("POST /webhookd/webhook-topics %s = %d", topic, st)
	}
}

// createFlow makes a live flow of one send-webhook action through the
// API (declaring a topic trigger first) and waits until every delivery
// replica sends it; it returns the flow and action ids.
func createFlow(t testing.TB, api, trigger, url, body string, ds ...*dflows.Delivery) (flowID, actionID string) {
	t.Helper()
	if strings.Contains(trigger, ".") {
		declareTopic(t, api, trigger)
	}
	tmpl, _ := json.Marshal(body)
	def := fmt.Sprintf(`{"data":{"type":"flow","attributes":{"name":"orders","definition":{"triggers":[{"type":"metric","id":%q}],`+
		`"profile_filter":null,"entry_action_id":"a1","actions":[{"temporary_id":"a1","type":"send-webhook","links":{"next":null},`+
		`"data":{"status":"draft","message":{"name":"erp","url":%q,"headers":{"X-Shop-Token":"t0k3n-secret"},"body":%s}}}]}}}}`,
		trigger, url, tmpl)
	flowID, ids := createLiveFlow(t, api, def, ds...)
	return flowID, ids[0]
}

// createLiveFlow creates the flow of FlowCreateQuery def through the
// API, makes it live and waits until every delivery replica sends each
// of its actions; it returns the flow's and its actions' ids.
func createLiveFlow(t testing.TB, api, def string, ds ...*dflows.Delivery) (flowID string, actionIDs []string) {
	t.Helper()
	var created struct {
		Data struct {
			ID            string
			Relationships struct {
				FlowActions struct{ Data []struct{ ID string } } `json:"flow-actions"`
			}
		}
	}
	if st := call(t, "POST", api+"/api/flows", def, &created); st != http.StatusCreated {
		t.Fatalf("POST /api/flows = %d", st)
	}
	flowID = created.Data.ID
	for _, a := range created.Data.Relationships.FlowActions.Data {
		actionIDs = append(actionIDs, a.ID)
	}
	live := fmt.Sprintf(`{"data":{"type":"flow","id":%q,"attributes":{"status":"live"}}}`, flowID)
	if st := call(t, "PATCH", api+"/api/flows/"+flowID, live, nil); st != http.StatusOK {
		t.Fatalf("PATCH flow live = %d", st)
	}
	for _, d := range ds {
		waitFor(t, 10*time.Second, "the flow live in delivery's index", func() bool {
			return !slices.ContainsFunc(actionIDs, func(id string) bool { return !d.Sends(id) })
		})
	}
	return flowID, actionIDs
}

// orderEvent is a Placed Order event with its profile in included[].
func orderEvent(id string, value float64, items int) []byte {
	list := make([]string, items)
	for i := range list {
		list[i] = fmt.Sprintf(`{"SKU":"S%d","ItemPrice":%d}`, i, i)
	}
	return fmt.Appendf(nil, `{"data":{"type":"event","id":%q,"attributes":{"timestamp":1700503941,"datetime":"2023-11-20 18:12:21+00:00",`+
		`"uuid":"58edf080-87d0-11ee-8001-895ec29a6280","event_properties":{"value":%g,"Quantity":3,"Items":[%s]}},`+
		`"relationships":{"metric":{"data":{"type":"metric","id":"PlacedOrder1"}},"profile":{"data":{"type":"profile","id":"p-1"}}}},`+
		`"included":[{"type":"profile","id":"p-1","attributes":{"email":"ada@example.com","first_name":"Ada",`+
		`"properties":{"Loyalty Points":120,"VIP":true}}}]}`, id, value, strings.Join(list, ","))
}

// counts reads an action's counters through the API.
func counts(t testing.TB, api, actionID string) map[string]float64 {
	t.Helper()
	var doc struct {
		Data struct{ Attributes map[string]float64 }
	}
	if st := call(t, "GET", api+"/webhookd/flow-actions/"+actionID+"/counts", "", &doc); st != http.StatusOK {
		t.Fatalf("GET counts = %d", st)
	}
	return doc.Data.Attributes
}

func waitCounts(t testing.TB, api, actionID string, want map[string]float64) map[string]float64 {
	t.Helper()
	var got map[string]float64
	waitFor(t, 60*time.Second, fmt.Sprintf("counts %v", want), func() bool {
		got = counts(t, api, actionID)
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return true
	})
	return got
}

// recorder keeps the attempts delivery records.
type recorder struct {
	mu  sync.Mutex
	all []activity.Attempt
}

func (r *recorder) Record(a activity.Attempt) {
	r.mu.Lock()
	r.all = append(r.all, a)
	r.mu.Unlock()
}

func (r *recorder) attempts() []activity.Attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]activity.Attempt(nil), r.all...)
}

// A Placed Order event with its profile triggers the flow: one POST with
// the rendered body, the user's header, X-Klaviyo-Flow-ID, JSON.
func TestFlowWebhookDelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	rec := &recorder{}
	d := e.startFlows(func(c *dflows.Config) { c.Activity = rec })
	api := e.apiServer()
	rcv := newReceiver(t, http.StatusOK)
	body := `{"email": "{{ person.email }}", "name": "{{ person.first_name|default:'friend' }}",
"city": "{{ person.city|default:'unknown' }}", "points": {{ person|lookup:'Loyalty Points' }},
"total": {{ event.value }}, "double": {{ event.Quantity * 2 }}, "vip": {{ person|lookup:'VIP' }},
"tier": "{% if person|lookup:'Loyalty Points' > 100 %}gold{% else %}basic{% endif %}"}`
	flowID, actionID := createFlow(t, api, topicOrder, rcv.srv.URL+"/hook", body, d)

	e.publishRaw(topicOrder, orderEvent("ev-1", 12.5, 1), "ev-1")
	e.publishRaw(topicSMS, eventBody("not-a-trigger"), "not-a-trigger")
	waitCounts(t, api, actionID, map[string]float64{"delivered": 1, "attempts": 1})

	reqs := rcv.got()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	var got map[string]any
	if err := json.Unmarshal(reqs[0].body, &got); err != nil {
		t.Fatalf("body %s is not JSON: %v", reqs[0].body, err)
	}
	want := map[string]any{"email": "ada@example.com", "name": "Ada", "city": "unknown", "points": 120.0,
		"total": 12.5, "double": 6.0, "vip": true, "tier": "gold"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("body[%s] = %v, want %v (body %s)", k, got[k], v, reqs[0].body)
		}
	}
	if !strings.Contains(string(reqs[0].body), `"total": 12.5,`) {
		t.Errorf("body %s: want the number written as 12.5", reqs[0].body)
	}
	h := reqs[0].header
	for name, want := range map[string]string{"X-Shop-Token": "t0k3n-secret", "X-Klaviyo-Flow-Id": flowID, "Content-Type": "application/json"} {
		if got := h.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if !strings.HasPrefix(h.Get("User-Agent"), "webhookd") {
		t.Errorf("User-Agent = %q", h.Get("User-Agent"))
	}
	atts := rec.attempts()
	if len(atts) != 1 || atts[0].FlowID != flowID || atts[0].WebhookID != actionID || atts[0].ProfileID != "p-1" ||
		atts[0].Outcome != activity.Delivered || atts[0].Status != 200 || atts[0].Trigger != activity.TriggerLive {
		t.Errorf("attempt log = %+v", atts)
	}
}

// A trigger may name the metric id events carry instead of a topic.
func TestFlowWebhookMetricTrigger(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	d := e.startFlows(nil)
	api := e.apiServer()
	rcv := newReceiver(t, http.StatusAccepted)
	_, actionID := createFlow(t, api, "PlacedOrder1", rcv.srv.URL, `{"id": "{{ event.id }}"}`, d)
	e.publishRaw("event:klaviyo.some_order_source", orderEvent("ev-m", 1, 0), "ev-m")
	waitCounts(t, api, actionID, map[string]float64{"delivered": 1})
	if reqs := rcv.got(); len(reqs) != 1 || string(reqs[0].body) != `{"id": "ev-m"}` {
		t.Errorf("receiver got %d requests (%q), want 1", len(reqs), reqs)
	}
}

// 429 then 200: one retry, then delivered; 400: skipped at once.
func TestFlowWebhookRetryAndSkip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	rec := &recorder{}
	d := e.startFlows(func(c *dflows.Config) { c.RetryBase = 20 * time.Millisecond; c.Activity = rec })
	api := e.apiServer()
	busy := newReceiver(t, http.StatusTooManyRequests, http.StatusOK)
	refuse := newReceiver(t, http.StatusBadRequest)
	_, busyID := createFlow(t, api, topicOrder, busy.srv.URL, `{"n": 1}`, d)
	_, refuseID := createFlow(t, api, topicOrder, refuse.srv.URL, `{"n": 2}`, d)

	e.publishRaw(topicOrder, orderEvent("ev-r", 5, 0), "ev-r")
	waitCounts(t, api, busyID, map[string]float64{"delivered": 1, "attempts": 2, "failed_attempts": 1, "waiting_to_retry": 0})
	got := waitCounts(t, api, refuseID, map[string]float64{"skipped": 1, "attempts": 1})
	if got["waiting_to_retry"] != 0 || got["delivered"] != 0 {
		t.Errorf("400 receiver's counts = %v, want skipped at once", got)
	}
	if n := len(busy.got()); n != 2 {
		t.Errorf("429-then-200 receiver got %d requests, want 2", n)
	}
	if n := len(refuse.got()); n != 1 {
		t.Errorf("400 receiver got %d requests, want 1", n)
	}
	var retried bool
	for _, a := range rec.attempts() {
		if a.WebhookID == busyID && a.Attempt == 2 && a.Trigger == activity.TriggerRetry && a.Outcome == activity.Delivered {
			retried = true
		}
		if a.WebhookID == busyID && a.Attempt == 1 && (a.Status != 429 || a.NextAttemptAt.IsZero()) {
			t.Errorf("first attempt = %+v, want 429 with a next attempt time", a)
		}
	}
	if !retried {
		t.Errorf("attempt log has no delivered retry: %+v", rec.attempts())
	}
}

// An always-503 receiver gets the first request and 17 retries, then the
// event is skipped.
func TestFlowWebhookRetriesExhausted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	d := e.startFlows(func(c *dflows.Config) { c.RetryBase = 2 * time.Millisecond })
	api := e.apiServer()
	rcv := newReceiver(t, http.StatusServiceUnavailable)
	_, actionID := createFlow(t, api, topicOrder, rcv.srv.URL, `{}`, d)
	e.publishRaw(topicOrder, orderEvent("ev-503", 5, 0), "ev-503")
	waitCounts(t, api, actionID, map[string]float64{"skipped": 1, "waiting_to_retry": 0})
	if n := len(rcv.got()); n != 1+dflows.MaxRetries || dflows.MaxRetries != 17 {
		t.Errorf("receiver got %d requests, want 18 (MaxRetries %d)", n, dflows.MaxRetries)
	}
}

// A template that loops over a huge list, or emits megabytes, is
// stopped by its budget: the event is skipped and nothing is sent.
func TestFlowWebhookBudgets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	d := e.startFlows(nil)
	api := e.apiServer()
	rcv := newReceiver(t, http.StatusOK)
	_, loops := createFlow(t, api, topicOrder, rcv.srv.URL,
		`{"n": [{% for a in event.Items %}{% for b in event.Items %}{% endfor %}{% endfor %}0]}`, d)
	_, big := createFlow(t, api, topicOrder, rcv.srv.URL,
		`{"s": [{% for a in event.Items %}{{ event.Items }},{% endfor %}0]}`, d)
	e.publishRaw(topicOrder, orderEvent("ev-big", 5, 5000), "ev-big")
	for _, id := range []string{loops, big} {
		waitCounts(t, api, id, map[string]float64{"skipped": 1, "attempts": 0})
	}
	if n := len(rcv.got()); n != 0 {
		t.Errorf("receiver got %d requests, want none", n)
	}
}

// Two replicas together never run more than --flow-max-in-flight
// requests of one action.
func TestFlowWebhookMaxInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	cap2 := func(c *dflows.Config) { c.MaxInFlight = 2; c.RetryBase = 10 * time.Millisecond }
	d1, d2 := e.startFlows(cap2), e.startFlows(cap2)
	api := e.apiServer()
	rcv := newReceiver(t, http.StatusOK)
	rcv.delay = 50 * time.Millisecond
	_, actionID := createFlow(t, api, topicOrder, rcv.srv.URL, `{"id": "{{ event.id }}"}`, d1, d2)
	const n = 30
	for i := range n {
		id := fmt.Sprintf("ev-cap-%d", i)
		e.publishRaw(topicOrder, orderEvent(id, 1, 0), id)
	}
	waitCounts(t, api, actionID, map[string]float64{"delivered": n})
	if p := rcv.peak.Load(); p > 2 || p < 1 {
		t.Errorf("peak concurrent requests = %d, want 1..2", p)
	}
	seen := map[string]bool{}
	for _, r := range rcv.got() {
		seen[string(r.body)] = true
	}
	if len(seen) != n {
		t.Errorf("receiver got %d distinct events, want %d", len(seen), n)
	}
}

// Only live actions of live flows of the event's account send: a manual
// action and another account's live flow on the same trigger get nothing.
func TestFlowWebhookOnlyLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	d := e.startFlows(nil)
	api := e.apiServer()
	live, manual, other := newReceiver(t, http.StatusOK), newReceiver(t, http.StatusOK), newReceiver(t, http.StatusOK)
	_, liveID := createFlow(t, api, topicOrder, live.srv.URL, `{"a": 1}`, d)
	_, manualID := createFlow(t, api, topicOrder, manual.srv.URL, `{"b": 1}`, d)
	patch := fmt.Sprintf(`{"data":{"type":"flow-action","id":%q,"attributes":{"definition":{"type":"send-webhook",`+
		`"data":{"status":"manual","message":{"url":%q,"body":"{}"}}}}}}`, manualID, manual.srv.URL)
	if st := call(t, "PATCH", api+"/api/flow-actions/"+manualID, patch, nil); st != http.StatusOK {
		t.Fatalf("PATCH action manual = %d", st)
	}
	waitFor(t, 10*time.Second, "the manual action out of the index", func() bool { return !d.Sends(manualID) })

	st := flows.NewStore(e.redis.Client(t))
	f, temp := flows.Flow{AccountID: "other", Name: "o", TriggerID: topicOrder, EntryID: "x",
		Actions: []flows.Action{{Status: flows.StatusLive, Message: flows.Message{URL: other.srv.URL, Body: "{}"}}}}, []string{"x"}
	f, err := st.Create(context.Background(), f, temp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(context.Background(), "other", f.ID, func(f *flows.Flow) error { f.Status = flows.StatusLive; return nil }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the other account's action live", func() bool { return d.Sends(f.Actions[0].ID) })

	// All three actions are looked up while handling the same event, so
	// once the live one has it the others have been passed over.
	e.publishRaw(topicOrder, orderEvent("ev-live", 1, 0), "ev-live")
	waitCounts(t, api, liveID, map[string]float64{"delivered": 1})
	if n, m := len(manual.got()), len(other.got()); n != 0 || m != 0 {
		t.Errorf("manual action got %d requests, other account's flow %d; want none", n, m)
	}
}

// Without a live flow there is no flow consumer on the event stream, so
// events cost the server nothing for flows; it comes back with one.
func TestFlowConsumerOnlyWhileLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	d := e.startFlows(nil)
	api := e.apiServer()
	consumer := func() bool {
		_, err := e.js.Consumer(context.Background(), "EVENTS", "flows")
		return err == nil
	}
	rcv := newReceiver(t, http.StatusOK)
	flowID, actionID := createFlow(t, api, topicOrder, rcv.srv.URL, `{"id": "{{ event.id }}"}`, d)
	if !consumer() {
		t.Fatal("a flow is live, but the event stream has no flows consumer")
	}
	status := func(st string) {
		body := fmt.Sprintf(`{"data":{"type":"flow","id":%q,"attributes":{"status":%q}}}`, flowID, st)
		if code := call(t, "PATCH", api+"/api/flows/"+flowID, body, nil); code != http.StatusOK {
			t.Fatalf("PATCH flow %s = %d", st, code)
		}
	}
	status("draft")
	waitFor(t, 10*time.Second, "the flows consumer removed", func() bool { return !consumer() })
	e.publishRaw(topicOrder, orderEvent("ev-while-draft", 1, 0), "ev-while-draft")

	status("live")
	waitFor(t, 10*time.Second, "the flow live again", func() bool { return d.Sends(actionID) && consumer() })
	e.publishRaw(topicOrder, orderEvent("ev-live-again", 1, 0), "ev-live-again")
	waitCounts(t, api, actionID, map[string]float64{"delivered": 1})
	if reqs := rcv.got(); len(reqs) != 1 || string(reqs[0].body) != `{"id": "ev-live-again"}` {
		t.Errorf("receiver got %d requests (%q), want only the event published while live", len(reqs), reqs)
	}
}

// A flow action's requests are in the attempt log, readable per action:
// a 503 then a 200, newest first, with the flow, the profile and the
// retry's time.
func TestFlowWebhookAttemptLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	w, apiURL := attemptLogAPI(t, e)
	d := e.startFlows(func(c *dflows.Config) { c.Activity = w; c.RetryBase = 20 * time.Millisecond })

	rcv := newReceiver(t, http.StatusServiceUnavailable, http.StatusOK)
	flowID, actionID := createFlow(t, apiURL, topicOrder, rcv.srv.URL, `{"e": "{{ person.email }}"}`, d)
	e.publishRaw(topicOrder, orderEvent("ev-log", 1, 0), "ev-log")

	type attempt struct {
		Attributes struct {
			Flow          string   `json:"flow_id"`
			Profile       string   `json:"profile_id"`
			Trig          string   `json:"trigger"`
			Out           string   `json:"outcome"`
			Status        int      `json:"status"`
			Attempt       int      `json:"attempt"`
			NextAttemptAt *string  `json:"next_attempt_at"`
			ExternalIDs   []string `json:"external_ids"`
		}
		Links struct{ Self string }
	}
	var doc struct{ Data []attempt }
	waitFor(t, 30*time.Second, "two attempts in the log", func() bool {
		doc.Data = nil
		call(t, "GET", apiURL+"/webhookd/flow-actions/"+actionID+"/attempts", "", &doc)
		return len(doc.Data) == 2
	})
	ok, failed := doc.Data[0].Attributes, doc.Data[1].Attributes
	if ok.Out != "delivered" || ok.Status != 200 || ok.Attempt != 2 || ok.Trig != "retry" {
		t.Errorf("newest attempt = %+v, want the delivered retry", ok)
	}
	if failed.Out != "failed" || failed.Status != 503 || failed.Attempt != 1 || failed.NextAttemptAt == nil {
		t.Errorf("oldest attempt = %+v, want the 503 with its next attempt time", failed)
	}
	for _, a := range doc.Data {
		if a.Attributes.Flow != flowID || a.Attributes.Profile != "p-1" || !slices.Equal(a.Attributes.ExternalIDs, []string{"ev-log"}) {
			t.Errorf("attempt %+v: want flow %s, profile p-1, event ev-log", a.Attributes, flowID)
		}
		var one struct{ Data attempt }
		if st := call(t, "GET", a.Links.Self, "", &one); st != http.StatusOK || one.Data.Attributes.Status != a.Attributes.Status {
			t.Errorf("GET %s = %d", a.Links.Self, st)
		}
	}
	if st := call(t, "GET", apiURL+"/webhookd/flow-actions/nope/attempts", "", nil); st != http.StatusNotFound {
		t.Errorf("attempts of an unknown action = %d, want 404", st)
	}
}
