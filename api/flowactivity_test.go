package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/dispatcher/activity"
	"github.com/webhookd/webhookd/subscriptions/flows"
)

// activityEnv is an API with a flow action of account A whose attempt
// log holds, newest first: a delivered retry (ev-d), a 503 waiting to
// retry (ev-w), a render error (ev-r), ev-d's superseded 503, a 400
// (ev-s), a 503 whose retries ran out (ev-x) and a 503 whose retry is
// due (ev-due).
func activityEnv(t *testing.T) (*env, string) {
	log := &fakeLog{}
	e := newEnv(t, func(c *api.Config) { c.Attempts = log })
	res := e.do("POST", "/api/flows", keyA, flowBody(goodDef))
	if res.status != http.StatusCreated {
		t.Fatalf("POST /api/flows = %d %s", res.status, res.body)
	}
	act := at(res.doc(t), "data.relationships.flow-actions.data.0.id").(string)
	now := time.Now().UTC().Truncate(time.Second)
	first := now.Add(-10 * time.Minute)
	mk := func(seq uint64, ev, email string, try int, out activity.Outcome, status int, class activity.ErrorClass, next time.Time) activity.Entry {
		return activity.Entry{Seq: seq, Attempt: activity.Attempt{
			ID: fmt.Sprintf("01950000-0000-7000-8000-%012d", seq), AccountID: accountA, WebhookID: act,
			FlowID: "f", ProfileID: "p-" + ev, Email: email, StartedAt: now.Add(-time.Duration(100-seq) * time.Second),
			Outcome: out, Status: status, ErrorClass: class, Error: string(class), Attempt: try, NextAttemptAt: next,
			ExternalIDs: []string{ev}, FirstAt: first, Events: 1,
		}}
	}
	exhausted := mk(40, "ev-x", "dee@example.com", 18, activity.Failed, 503, activity.ClassServer, time.Time{})
	exhausted.Exhausted = true
	render := mk(70, "ev-r", "cy@example.com", 1, activity.Failed, 0, activity.ClassRender, time.Time{})
	render.Error = "line 1: unexpected end of template"
	log.entries = []activity.Entry{
		mk(90, "ev-d", "ada@example.com", 2, activity.Delivered, 200, "", time.Time{}),
		mk(80, "ev-w", "bob@example.com", 1, activity.Failed, 503, activity.ClassServer, now.Add(time.Hour)),
		render,
		mk(60, "ev-d", "ada@example.com", 1, activity.Failed, 503, activity.ClassServer, now.Add(-5*time.Minute)),
		mk(50, "ev-s", "Ada@Example.com", 1, activity.Failed, 400, activity.ClassClient, time.Time{}),
		exhausted,
		mk(30, "ev-due", "eve@example.com", 1, activity.Failed, 503, activity.ClassServer, now.Add(-time.Minute)),
	}
	st := flows.NewStore(e.redis.Client(t))
	for _, o := range []flows.Outcome{flows.WillRetry, flows.RetryDelivered, flows.Skipped} {
		if err := st.Record(context.Background(), act, o); err != nil {
			t.Fatal(err)
		}
	}
	return e, act
}

// rowsOf is the event ids and statuses of a page, in order.
func rowsOf(doc map[string]any) []string {
	var out []string
	data, _ := at(doc, "data").([]any)
	for i := range data {
		r := at(data[i], "attributes").(map[string]any)
		out = append(out, r["event_id"].(string)+"="+r["status"].(string))
	}
	return out
}

func TestFlowActionActivity(t *testing.T) {
	e, act := activityEnv(t)
	want := []string{"ev-d=delivered", "ev-w=waiting_to_retry", "ev-r=skipped", "ev-s=skipped", "ev-x=skipped", "ev-due=sending"}
	for _, suffix := range []string{"", "/"} {
		res := e.do("GET", "/webhookd/flow-actions/"+act+"/activity"+suffix, keyA, "")
		if res.status != http.StatusOK {
			t.Fatalf("GET activity%s = %d %s", suffix, res.status, res.body)
		}
		doc := res.doc(t)
		if got := rowsOf(doc); !slices.Equal(got, want) {
			t.Errorf("GET activity%s rows = %v, want %v", suffix, got, want)
		}
		for path, v := range map[string]any{
			"data.0.type": "flow-action-activity", "data.0.id": act + ":ev-d",
			"data.0.attributes.email": "ada@example.com", "data.0.attributes.attempts": 2.0,
			"data.0.attributes.last_status": 200.0, "data.0.attributes.skip_reason": nil, "data.0.attributes.error": nil,
			"data.0.attributes.next_attempt_at": nil, "data.0.relationships.last-attempt.data.type": "webhook-attempt",
			"data.1.attributes.next_attempt_at": at(doc, "data.1.attributes.next_attempt_at"), // checked below
			"data.2.attributes.skip_reason":     "render_error", "data.2.attributes.attempts": 0.0,
			"data.2.attributes.last_status": nil, "data.2.attributes.last_attempted_at": nil,
			"data.2.attributes.error":       "line 1: unexpected end of template",
			"data.3.attributes.skip_reason": "client_error", "data.3.attributes.last_status": 400.0,
			"data.4.attributes.skip_reason": "retries_exhausted", "data.4.attributes.attempts": 18.0,
			"meta.counts.delivered": 1.0, "meta.counts.skipped": 1.0, "meta.counts.waiting_to_retry": 0.0,
			"links.next": nil,
		} {
			if got := at(doc, path); got != v {
				t.Errorf("GET activity%s: %s = %v, want %v", suffix, path, got, v)
			}
		}
		if at(doc, "data.1.attributes.next_attempt_at") == nil || at(doc, "data.0.attributes.first_attempted_at") == nil {
			t.Errorf("GET activity%s: waiting row without next_attempt_at or delivered row without first_attempted_at: %s", suffix, res.body)
		}
		self, _ := at(doc, "data.0.links.self").(string)
		if res := e.do("GET", strings.TrimPrefix(self, e.srv.URL), keyA, ""); !slices.Equal(rowsOf(res.doc(t)), []string{"ev-d=delivered"}) {
			t.Errorf("row self link %s = %s", self, res.body)
		}
	}
}

// Pages of two chain through links.next; the superseded 503 of ev-d
// below the first page's cursor is not a row again, nor (off the first
// page) the 503 whose retry is due.
func TestFlowActionActivityPages(t *testing.T) {
	e, act := activityEnv(t)
	path := "/webhookd/flow-actions/" + act + "/activity?page%5Bsize%5D=2"
	var got [][]string
	for path != "" && len(got) < 10 {
		res := e.do("GET", path, keyA, "")
		if res.status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, res.status, res.body)
		}
		doc := res.doc(t)
		got = append(got, rowsOf(doc))
		next, _ := at(doc, "links.next").(string)
		path = strings.TrimPrefix(next, e.srv.URL)
	}
	want := [][]string{{"ev-d=delivered", "ev-w=waiting_to_retry"}, {"ev-r=skipped", "ev-s=skipped"}, {"ev-x=skipped"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("pages = %v, want %v", got, want)
	}
}

func TestFlowActionActivityFilters(t *testing.T) {
	e, act := activityEnv(t)
	cases := []struct {
		filter string
		want   []string
	}{
		{`equals(status,"skipped")`, []string{"ev-r=skipped", "ev-s=skipped", "ev-x=skipped"}},
		{`equals(email,"ada@example.com")`, []string{"ev-d=delivered", "ev-s=skipped"}},
		{`and(equals(email,"ADA@example.com"),equals(status,"delivered"))`, []string{"ev-d=delivered"}},
		{`any(status,["waiting_to_retry","sending"])`, []string{"ev-w=waiting_to_retry", "ev-due=sending"}},
		{`equals(status,"scheduled")`, nil},
		{`equals(event_id,"ev-d")`, []string{"ev-d=delivered"}},
	}
	for _, tc := range cases {
		res := e.do("GET", "/webhookd/flow-actions/"+act+"/activity?filter="+url.QueryEscape(tc.filter), keyA, "")
		if res.status != http.StatusOK {
			t.Errorf("filter %s = %d %s", tc.filter, res.status, res.body)
			continue
		}
		if got := rowsOf(res.doc(t)); !slices.Equal(got, tc.want) {
			t.Errorf("filter %s rows = %v, want %v", tc.filter, got, tc.want)
		}
	}
}

func TestFlowActionActivityBadParameters(t *testing.T) {
	e, act := activityEnv(t)
	cases := []queryRefusal{
		{"page[size]=101", "page[size]", "1 to 100"},
		{"page[size]=0", "page[size]", "1 to 100"},
		{"page[cursor]=abc", "page[cursor]", "links.next"},
		{"filter=" + url.QueryEscape(`equals(outcome,"failed")`), "filter", `unknown field "outcome"`},
		{"filter=" + url.QueryEscape(`equals(status,"lost")`), "filter", `not "lost"`},
		{"filter=" + url.QueryEscape(`equals(status,skipped)`), "filter", "quoted string"},
		{"filter=" + url.QueryEscape(`any(email,["a@b.c"])`), "filter", `operator "any"`},
		{"filter=" + url.QueryEscape(`equals(email,"a@b.c"`), "filter", "expected )"},
	}
	e.wantQueryRefusals(t, "/webhookd/flow-actions/"+act+"/activity?", cases)
}

// Another account's action and an unknown action are 404; a key is
// required; only GET is served.
func TestFlowActionActivityNotFound(t *testing.T) {
	e, act := activityEnv(t)
	path := "/webhookd/flow-actions/" + act + "/activity"
	if res := e.do("GET", path, keyB, ""); res.status != http.StatusNotFound || strings.Contains(string(res.body), "ev-d") {
		t.Errorf("another account's activity = %d %s, want 404", res.status, res.body)
	}
	if res := e.do("GET", "/webhookd/flow-actions/nope/activity", keyA, ""); res.status != http.StatusNotFound {
		t.Errorf("unknown action = %d, want 404", res.status)
	}
	if res := e.do("GET", path, "", ""); res.status != http.StatusUnauthorized {
		t.Errorf("without a key = %d, want 401", res.status)
	}
	if res := e.do("POST", path, keyA, ""); res.status != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", res.status)
	}
}
