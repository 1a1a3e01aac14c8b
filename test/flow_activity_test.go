package test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/dispatcher/activity"
	dflows "github.com/webhookd/webhookd/dispatcher/flows"
	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/subscriptions/flows"
	"github.com/webhookd/webhookd/test/harness"
)

// otherKey is an API key of another account than testKey's.
const otherKey = "pk_test_other_0123456789"

// attemptLogAPI starts the attempt log's writer on e's NATS server and an
// API reading it (keys: testKey for the default account, otherKey for
// "other"); it returns the writer, for flow delivery to record to, and
// the API's URL.
func attemptLogAPI(t *testing.T, e *env) (*activity.Writer, string) {
	t.Helper()
	js, err := jetstream.New(harness.Connect(t, e.nats))
	if err != nil {
		t.Fatal(err)
	}
	acfg := activity.Config{}
	if err := activity.Ensure(context.Background(), js, acfg); err != nil {
		t.Fatal(err)
	}
	w := activity.NewWriter(acfg, js, zerolog.Nop())
	e.runUntilEnd("activity.Writer.Run", w.Run)
	keys, err := subscriptions.ParseKeys([]string{testKey + "=default", otherKey + "=other"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{AllowInsecureEndpoints: true, Flows: flows.NewStore(e.redis.Client(t)),
		Attempts: activity.NewReader(acfg, js)}, e.store, keys, zerolog.Nop()))
	t.Cleanup(srv.Close)
	return w, srv.URL
}

// personEvent is a Placed Order event with its own id, a profile with
// the given email in included[], and extra event properties.
func personEvent(id, email, props string) []byte {
	return fmt.Appendf(nil, `{"data":{"type":"event","id":%q,"attributes":{"timestamp":1700503941,`+
		`"datetime":"2023-11-20 18:12:21+00:00","event_properties":{%s}},`+
		`"relationships":{"metric":{"data":{"type":"metric","id":"PlacedOrder1"}},"profile":{"data":{"type":"profile","id":"p-%s"}}}},`+
		`"included":[{"type":"profile","id":"p-%s","attributes":{"email":%q}}]}`, id, props, id, id, email)
}

// activityRow is a flow-action-activity row as the API renders it.
type activityRow struct {
	ID         string
	Attributes struct {
		EventID    string  `json:"event_id"`
		Email      *string `json:"email"`
		Status     string  `json:"status"`
		SkipReason *string `json:"skip_reason"`
		Attempts   int     `json:"attempts"`
		LastStatus *int    `json:"last_status"`
		Error      *string `json:"error"`
		First      *string `json:"first_attempted_at"`
		Last       *string `json:"last_attempted_at"`
		Next       *string `json:"next_attempt_at"`
	}
}

type activityPage struct {
	Data  []activityRow
	Links struct{ Next *string }
	Meta  struct{ Counts map[string]int }
}

// byEvent reads the activity at path (one page) and returns its rows by
// event id.
func byEvent(t *testing.T, path string) (map[string]activityRow, activityPage) {
	t.Helper()
	var p activityPage
	if st := call(t, "GET", path, "", &p); st != http.StatusOK {
		t.Fatalf("GET %s = %d", path, st)
	}
	rows := map[string]activityRow{}
	for _, r := range p.Data {
		if _, dup := rows[r.Attributes.EventID]; dup {
			t.Errorf("GET %s: event %s has two rows", path, r.Attributes.EventID)
		}
		rows[r.Attributes.EventID] = r
	}
	return rows, p
}

// "View All Activity": five events to one action — two answered 200,
// one 503 (with Retry-After) then 200, one 400, one whose body does not
// render as JSON — show as delivered, waiting_to_retry then delivered,
// skipped (client_error) and skipped (render_error), each with the
// profile's email; filters and pages chain; another account gets 404.
func TestFlowActionActivityEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	w, apiURL := attemptLogAPI(t, e)
	// RetryBase 1 s makes the retry window 48 min, so the receiver's
	// Retry-After of 10 s holds the retry long enough to be seen waiting.
	d := e.startFlows(func(c *dflows.Config) { c.Activity = w; c.RetryBase = time.Second })

	var mu sync.Mutex
	seen := map[string]int{}
	rcv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		var b struct{ ID string }
		_ = json.NewDecoder(req.Body).Decode(&b)
		mu.Lock()
		seen[b.ID]++
		n := seen[b.ID]
		mu.Unlock()
		switch {
		case b.ID == "ev-retry" && n == 1:
			rw.Header().Set("Retry-After", "10")
			rw.WriteHeader(http.StatusServiceUnavailable)
		case b.ID == "ev-refused":
			rw.WriteHeader(http.StatusBadRequest)
		default:
			rw.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(rcv.Close)
	// A trailing comma, so not JSON, when the event has "bad".
	body := `{"id": "{{ event.id }}", "email": "{{ person.email }}"{% if event.bad %},{% endif %}}`
	_, actionID := createFlow(t, apiURL, topicOrder, rcv.URL, body, d)
	emails := map[string]string{"ev-ok1": "ok1@example.com", "ev-ok2": "ok2@example.com", "ev-retry": "retry@example.com",
		"ev-refused": "refused@example.com", "ev-bad": "bad@example.com"}
	for _, id := range []string{"ev-ok1", "ev-ok2", "ev-retry", "ev-refused", "ev-bad"} {
		props := `"value": 1`
		if id == "ev-bad" {
			props += `, "bad": true`
		}
		e.publishRaw(topicOrder, personEvent(id, emails[id], props), id)
	}
	activityURL := apiURL + "/webhookd/flow-actions/" + actionID + "/activity"

	// While the retry waits: five rows, each with its email.
	var rows map[string]activityRow
	waitFor(t, 30*time.Second, "five activity rows, the 503 waiting to retry", func() bool {
		rows, _ = byEvent(t, activityURL)
		return len(rows) == 5 && rows["ev-retry"].Attributes.Status == "waiting_to_retry"
	})
	for id, email := range emails {
		if r := rows[id].Attributes; r.Email == nil || *r.Email != email {
			t.Errorf("row %s email = %v, want %s", id, r.Email, email)
		}
	}
	if r := rows["ev-retry"].Attributes; r.Next == nil || r.LastStatus == nil || *r.LastStatus != 503 || r.Attempts != 1 {
		t.Errorf("waiting row = %+v, want a 503 with its next attempt time", r)
	}
	check := func(id, status, reason string, attempts, last int) {
		t.Helper()
		r := rows[id].Attributes
		gotReason, gotLast := "", 0
		if r.SkipReason != nil {
			gotReason = *r.SkipReason
		}
		if r.LastStatus != nil {
			gotLast = *r.LastStatus
		}
		if r.Status != status || gotReason != reason || r.Attempts != attempts || gotLast != last {
			t.Errorf("row %s = %s/%q/%d attempts/last %d, want %s/%q/%d/%d", id, r.Status, gotReason, r.Attempts, gotLast,
				status, reason, attempts, last)
		}
	}
	check("ev-ok1", "delivered", "", 1, 200)
	check("ev-ok2", "delivered", "", 1, 200)
	check("ev-refused", "skipped", "client_error", 1, 400)
	check("ev-bad", "skipped", "render_error", 0, 0)
	if r := rows["ev-bad"].Attributes; r.Error == nil || !strings.Contains(*r.Error, "JSON") {
		t.Errorf("render error row's error = %v, want the reason (not JSON)", r.Error)
	}

	// After the retry: delivered on the second attempt, first before last.
	var page activityPage
	waitFor(t, 60*time.Second, "the retried event delivered", func() bool {
		rows, page = byEvent(t, activityURL)
		return rows["ev-retry"].Attributes.Status == "delivered"
	})
	check("ev-retry", "delivered", "", 2, 200)
	if r := rows["ev-retry"].Attributes; r.First == nil || r.Last == nil || !parseTime(t, *r.First).Before(parseTime(t, *r.Last)) || r.Next != nil {
		t.Errorf("retried row = %+v, want first < last attempt and no next attempt", r)
	}
	if len(rows) != 5 {
		t.Errorf("%d rows after the retry, want 5 (the superseded 503 is not a row)", len(rows))
	}
	if c := page.Meta.Counts; c["delivered"] != 3 || c["skipped"] != 2 || c["waiting_to_retry"] != 0 {
		t.Errorf("meta.counts = %v, want 3 delivered, 2 skipped, none waiting", c)
	}

	// Filters.
	for filter, want := range map[string][]string{
		`equals(status,"skipped")`:          {"ev-bad", "ev-refused"},
		`equals(email,"OK1@example.com")`:   {"ev-ok1"},
		`equals(status,"waiting_to_retry")`: nil,
	} {
		got, _ := byEvent(t, activityURL+"?filter="+url.QueryEscape(filter))
		if ids := slices.Sorted(maps.Keys(got)); !slices.Equal(ids, want) {
			t.Errorf("filter %s = %v, want %v", filter, ids, want)
		}
	}

	// Pages of two chain to the same five rows, newest first overall.
	var all []string
	next := activityURL + "?page%5Bsize%5D=2"
	for pages := 0; next != ""; pages++ {
		if pages == 5 {
			t.Fatalf("more than 5 pages of 2 for 5 rows: %v", all)
		}
		_, p := byEvent(t, next)
		for _, r := range p.Data {
			all = append(all, r.Attributes.EventID)
		}
		next = ""
		if p.Links.Next != nil {
			next = *p.Links.Next
		}
	}
	if slices.Sort(all); !slices.Equal(all, []string{"ev-bad", "ev-ok1", "ev-ok2", "ev-refused", "ev-retry"}) {
		t.Errorf("paged rows = %v, want each event once", all)
	}

	// The render error is in the attempt log too, as an attempt that made
	// no request.
	var atts struct {
		Data []struct {
			Attributes struct {
				Status      *int     `json:"status"`
				ExternalIDs []string `json:"external_ids"`
			}
		}
	}
	call(t, "GET", apiURL+"/webhookd/flow-actions/"+actionID+"/attempts?filter="+url.QueryEscape(`equals(error_class,"render_error")`), "", &atts)
	if len(atts.Data) != 1 || atts.Data[0].Attributes.Status != nil || !slices.Equal(atts.Data[0].Attributes.ExternalIDs, []string{"ev-bad"}) {
		t.Errorf("render_error attempts = %+v, want one for ev-bad without a status", atts.Data)
	}

	// Another account's key: 404, no rows.
	req, _ := http.NewRequestWithContext(context.Background(), "GET", activityURL, nil)
	req.Header.Set("Authorization", "Klaviyo-API-Key "+otherKey)
	req.Header.Set("revision", "2026-07-15")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("another account's activity = %d, want 404", resp.StatusCode)
	}
}

// A retry that comes due after its action stopped being live sends
// nothing; the event's row says skipped, action_not_live, and no longer
// waiting.
func TestFlowActionActivityNotLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	w, apiURL := attemptLogAPI(t, e)
	d := e.startFlows(func(c *dflows.Config) { c.Activity = w; c.RetryBase = time.Second })
	var requests atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		rw.Header().Set("Retry-After", "3")
		rw.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(rcv.Close)
	flowID, actionID := createFlow(t, apiURL, topicOrder, rcv.URL, `{"id": "{{ event.id }}"}`, d)
	e.publishRaw(topicOrder, personEvent("ev-stop", "stop@example.com", `"value": 1`), "ev-stop")
	activityURL := apiURL + "/webhookd/flow-actions/" + actionID + "/activity"
	waitFor(t, 30*time.Second, "the 503 recorded", func() bool {
		rows, _ := byEvent(t, activityURL)
		return rows["ev-stop"].Attributes.Attempts == 1
	})
	draft := fmt.Sprintf(`{"data":{"type":"flow","id":%q,"attributes":{"status":"draft"}}}`, flowID)
	if st := call(t, "PATCH", apiURL+"/api/flows/"+flowID, draft, nil); st != http.StatusOK {
		t.Fatalf("PATCH flow draft = %d", st)
	}
	var rows map[string]activityRow
	waitFor(t, 60*time.Second, "the event skipped as not live", func() bool {
		rows, _ = byEvent(t, activityURL)
		return rows["ev-stop"].Attributes.Status == "skipped"
	})
	r := rows["ev-stop"].Attributes
	// Normally one request; more if this machine took over 3 s to make
	// the flow a draft.
	if n := int(requests.Load()); r.SkipReason == nil || *r.SkipReason != "action_not_live" || r.Attempts != n || r.Email == nil || *r.Email != "stop@example.com" {
		t.Errorf("row = %+v, want skipped (action_not_live) after the receiver's %d requests, with the email", r, n)
	}
	if c := counts(t, apiURL, actionID); c["skipped"] != 1 || c["waiting_to_retry"] != 0 {
		t.Errorf("counts = %v, want 1 skipped, none waiting", c)
	}
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return v
}
