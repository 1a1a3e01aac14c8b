package api_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/dispatcher/activity"
)

// fakeLog is an attempt log of fixed entries, newest first; it applies a
// query's Match and remembers the last query.
type fakeLog struct {
	mu      sync.Mutex
	entries []activity.Entry
	last    activity.Query
	account string
}

func (f *fakeLog) List(_ context.Context, account, webhook string, q activity.Query) (activity.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last, f.account = q, account
	var p activity.Page
	for _, e := range f.entries {
		if e.WebhookID != webhook || (q.Before != 0 && e.Seq >= q.Before) || (q.Match != nil && !q.Match(&e.Attempt)) {
			continue
		}
		p.Entries = append(p.Entries, e)
		if len(p.Entries) == q.Limit {
			p.Next = e.Seq
			break
		}
	}
	return p, nil
}

func (f *fakeLog) Get(_ context.Context, account, webhook, id string) (activity.Entry, error) {
	for _, e := range f.entries {
		if e.ID == id && e.WebhookID == webhook && e.AccountID == account {
			return e, nil
		}
	}
	return activity.Entry{}, activity.ErrNotFound
}

func (f *fakeLog) query() activity.Query {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// attemptsEnv is an API with a webhook of account A and three attempts
// of it in the fake log: a 500, a refused connection, a 200.
func attemptsEnv(t *testing.T) (*env, *fakeLog, string) {
	log := &fakeLog{}
	e := newEnv(t, func(c *api.Config) { c.Attempts = log })
	id := e.create(keyA, "hook", topicSMS)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	base := activity.Attempt{AccountID: accountA, WebhookID: id, Events: 2, Bytes: 900, ExternalIDs: []string{"e1", "e2"}}
	ok, refused, failed := base, base, base
	ok.ID, ok.Trigger, ok.Outcome, ok.Status, ok.Attempt = "01950000-0000-7000-8000-000000000003", activity.TriggerRetry, activity.Delivered, 200, 3
	ok.StartedAt, ok.Duration, ok.ResponseExcerpt = t0.Add(2*time.Minute), 1500*time.Microsecond, "ok"
	refused.ID, refused.Trigger, refused.Outcome, refused.Attempt = "01950000-0000-7000-8000-000000000002", activity.TriggerRetry, activity.Failed, 2
	refused.StartedAt, refused.ErrorClass, refused.Error = t0.Add(time.Minute), activity.ClassConnect, "connection refused"
	refused.NextAttemptAt = t0.Add(90 * time.Second)
	failed.ID, failed.Trigger, failed.Outcome, failed.Status, failed.Attempt = "01950000-0000-7000-8000-000000000001", activity.TriggerLive, activity.Failed, 500, 1
	failed.StartedAt, failed.ErrorClass, failed.Error, failed.ExternalIDs = t0, activity.ClassServer, "status 500", []string{"e0", "e1"}
	log.entries = []activity.Entry{{Seq: 30, Attempt: ok}, {Seq: 20, Attempt: refused}, {Seq: 10, Attempt: failed}}
	return e, log, id
}

func TestListAttempts(t *testing.T) {
	e, _, id := attemptsEnv(t)
	for _, path := range []string{"/webhookd/webhooks/" + id + "/attempts", "/webhookd/webhooks/" + id + "/attempts/"} {
		res := e.do("GET", path, keyA, "")
		if res.status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, res.status, res.body)
		}
		doc := res.doc(t)
		if n := len(at(doc, "data").([]any)); n != 3 {
			t.Fatalf("GET %s: %d attempts, want 3", path, n)
		}
		if got := at(doc, "data.0.type"); got != "webhook-attempt" {
			t.Errorf("type = %v", got)
		}
		for i, want := range []string{"delivered", "failed", "failed"} {
			if got := at(doc, "data."+string(rune('0'+i))+".attributes.outcome"); got != want {
				t.Errorf("data.%d outcome = %v, want %s (newest first)", i, got, want)
			}
		}
		refused := at(doc, "data.1.attributes").(map[string]any)
		if refused["status"] != nil || refused["error_class"] != "unable_to_connect" || refused["next_attempt_at"] != "2026-03-01T12:01:30Z" ||
			refused["started_at"] != "2026-03-01T12:01:00Z" || refused["response_excerpt"] != nil {
			t.Errorf("refused attempt attributes = %v", refused)
		}
		okAttrs := at(doc, "data.0.attributes").(map[string]any)
		if okAttrs["status"] != 200.0 || okAttrs["error_class"] != nil || okAttrs["error"] != nil || okAttrs["duration_ms"] != 1.5 ||
			okAttrs["trigger"] != "retry" || okAttrs["attempt"] != 3.0 || okAttrs["events"] != 2.0 || okAttrs["response_excerpt"] != "ok" ||
			okAttrs["webhook_id"] != id || okAttrs["account_id"] != accountA {
			t.Errorf("delivered attempt attributes = %v", okAttrs)
		}
		if self := at(doc, "data.0.links.self"); self != e.srv.URL+"/webhookd/webhooks/"+id+"/attempts/01950000-0000-7000-8000-000000000003" {
			t.Errorf("self link = %v", self)
		}
		if at(doc, "links.next") != nil {
			t.Errorf("links.next = %v on the only page, want null", at(doc, "links.next"))
		}
	}
}

// links.next is a full URL carrying the cursor and the other parameters;
// following it gives the next page and nothing twice.
func TestListAttemptsPages(t *testing.T) {
	e, _, id := attemptsEnv(t)
	path := "/webhookd/webhooks/" + id + "/attempts?page[size]=2&filter=" + url.QueryEscape(`equals(external_id,"e1")`)
	var got []string
	for range 5 {
		res := e.do("GET", path, keyA, "")
		if res.status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, res.status, res.body)
		}
		doc := res.doc(t)
		for _, r := range at(doc, "data").([]any) {
			got = append(got, r.(map[string]any)["id"].(string))
		}
		next, _ := at(doc, "links.next").(string)
		if next == "" {
			break
		}
		if !strings.HasPrefix(next, e.srv.URL+"/webhookd/webhooks/"+id+"/attempts?") {
			t.Fatalf("links.next = %q, want a full URL of this list", next)
		}
		u, err := url.Parse(next)
		if err != nil {
			t.Fatal(err)
		}
		if u.Query().Get("page[size]") != "2" || u.Query().Get("filter") != `equals(external_id,"e1")` || u.Query().Get("page[cursor]") != "20" {
			t.Errorf("links.next query = %v, want page[size], filter and page[cursor]=20", u.Query())
		}
		path = u.RequestURI()
	}
	want := "01950000-0000-7000-8000-000000000003,01950000-0000-7000-8000-000000000002,01950000-0000-7000-8000-000000000001"
	if strings.Join(got, ",") != want {
		t.Errorf("pages gave %v, want %s", got, want)
	}
}

func TestAttemptFilters(t *testing.T) {
	e, log, id := attemptsEnv(t)
	cases := []struct {
		filter string
		want   int // attempts matched
		check  func(q activity.Query) bool
	}{
		{`equals(outcome,"failed")`, 2, nil},
		{`equals(status,500)`, 1, nil},
		{`equals(trigger,"retry")`, 2, nil},
		{`equals(error_class,"unable_to_connect")`, 1, nil},
		{`any(status,[200,500])`, 2, nil},
		{`greater-or-equal(status,500)`, 1, nil},
		{`equals(external_id,"e0")`, 1, func(q activity.Query) bool { return q.ExternalID == "e0" }},
		{`greater-or-equal(started_at,2026-03-01T12:01:00Z)`, 2, func(q activity.Query) bool {
			return q.Since.Equal(time.Date(2026, 3, 1, 12, 1, 0, 0, time.UTC))
		}},
		{`greater-than(started_at,2026-03-01T12:01:00Z)`, 1, nil},
		{`less-than(started_at,2026-03-01T12:01:00+00:00)`, 1, func(q activity.Query) bool {
			return q.Until.Equal(time.Date(2026, 3, 1, 12, 1, 0, 0, time.UTC))
		}},
		{`less-or-equal(started_at,2026-03-01T12:01:00Z)`, 2, nil},
		{`and(equals(outcome,"failed"),equals(trigger,"retry"))`, 1, nil},
		{`equals(outcome,"failed"),less-than(started_at,2026-03-01T12:00:30Z)`, 1, nil},
		{`and(equals(outcome, "failed"), and(greater-or-equal(started_at,2026-03-01T00:00:00Z), equals(external_id,"e1")))`, 2, nil},
	}
	for _, tc := range cases {
		res := e.do("GET", "/webhookd/webhooks/"+id+"/attempts?filter="+url.QueryEscape(tc.filter), keyA, "")
		if res.status != http.StatusOK {
			t.Errorf("filter %s = %d %s", tc.filter, res.status, res.body)
			continue
		}
		if n := len(at(res.doc(t), "data").([]any)); n != tc.want {
			t.Errorf("filter %s matched %d attempts, want %d", tc.filter, n, tc.want)
		}
		if tc.check != nil && !tc.check(log.query()) {
			t.Errorf("filter %s: query hints %+v", tc.filter, log.query())
		}
	}
}

// Bad parameters get a 400 naming the parameter; nothing is read.
func TestAttemptsBadParameters(t *testing.T) {
	e, _, id := attemptsEnv(t)
	cases := []queryRefusal{
		{"page[size]=101", "page[size]", "1 to 100"},
		{"page[size]=0", "page[size]", "1 to 100"},
		{"page[size]=x", "page[size]", "1 to 100"},
		{"page[cursor]=abc", "page[cursor]", "links.next"},
		{"filter=" + url.QueryEscape(`equals(colour,"red")`), "filter", `unknown field "colour"`},
		{"filter=" + url.QueryEscape(`contains(outcome,"fail")`), "filter", `operator "contains"`},
		{"filter=" + url.QueryEscape(`equals(started_at,2026-01-01T00:00:00Z)`), "filter", `operator "equals"`},
		{"filter=" + url.QueryEscape(`equals(outcome,"lost")`), "filter", `not "lost"`},
		{"filter=" + url.QueryEscape(`equals(status,"500")`), "filter", "integer"},
		{"filter=" + url.QueryEscape(`equals(outcome,failed)`), "filter", "quoted string"},
		{"filter=" + url.QueryEscape(`greater-than(started_at,yesterday)`), "filter", "ISO 8601"},
		{"filter=" + url.QueryEscape(`equals(outcome,"failed"`), "filter", "expected )"},
		{"filter=" + url.QueryEscape(`equals(outcome,"failed)`), "filter", "unterminated"},
		{"filter=" + url.QueryEscape(`and(equals(outcome,"failed");x)`), "filter", "expected , or )"},
	}
	e.wantQueryRefusals(t, "/webhookd/webhooks/"+id+"/attempts?", cases)
}

// Another account's webhook, an unknown webhook and an unknown attempt
// are 404; a key is required.
func TestAttemptsNotFound(t *testing.T) {
	e, _, id := attemptsEnv(t)
	for _, path := range []string{
		"/webhookd/webhooks/" + id + "/attempts",
		"/webhookd/webhooks/" + id + "/attempts/01950000-0000-7000-8000-000000000001",
	} {
		if res := e.do("GET", path, keyB, ""); res.status != http.StatusNotFound {
			t.Errorf("GET %s with another account's key = %d %s, want 404", path, res.status, res.body)
		}
		if res := e.do("GET", path, "", ""); res.status != http.StatusUnauthorized {
			t.Errorf("GET %s without a key = %d, want 401", path, res.status)
		}
	}
	if res := e.do("GET", "/webhookd/webhooks/nope/attempts", keyA, ""); res.status != http.StatusNotFound {
		t.Errorf("unknown webhook = %d, want 404", res.status)
	}
	for _, aid := range []string{"01950000-0000-7000-8000-000000000009", "not-a-uuid"} {
		res := e.do("GET", "/webhookd/webhooks/"+id+"/attempts/"+aid, keyA, "")
		if res.status != http.StatusNotFound || !strings.Contains(string(res.body), "No attempt with this id") {
			t.Errorf("unknown attempt %s = %d %s, want 404", aid, res.status, res.body)
		}
	}
	for _, suffix := range []string{"", "/"} {
		res := e.do("GET", "/webhookd/webhooks/"+id+"/attempts/01950000-0000-7000-8000-000000000002"+suffix, keyA, "")
		if res.status != http.StatusOK || at(res.doc(t), "data.attributes.error") != "connection refused" {
			t.Errorf("GET one attempt%s = %d %s", suffix, res.status, res.body)
		}
	}
	if res := e.do("POST", "/webhookd/webhooks/"+id+"/attempts", keyA, ""); res.status != http.StatusMethodNotAllowed {
		t.Errorf("POST attempts = %d, want 405", res.status)
	}
}

// queryRefusal is a query a list refuses: the parameter its error's
// source names and what its detail mentions.
type queryRefusal struct{ query, param, detail string }

// wantQueryRefusals checks that GET prefix+query is a 400 naming the
// case's parameter and mentioning its detail, for every case.
func (e *env) wantQueryRefusals(t *testing.T, prefix string, cases []queryRefusal) {
	t.Helper()
	for _, tc := range cases {
		res := e.do("GET", prefix+tc.query, keyA, "")
		if res.status != http.StatusBadRequest {
			t.Errorf("?%s = %d %s, want 400", tc.query, res.status, res.body)
			continue
		}
		doc := res.doc(t)
		if p := at(doc, "errors.0.source.parameter"); p != tc.param {
			t.Errorf("?%s: source.parameter = %v, want %s", tc.query, p, tc.param)
		}
		if d, _ := at(doc, "errors.0.detail").(string); !strings.Contains(d, tc.detail) {
			t.Errorf("?%s: detail %q, want it to mention %q", tc.query, d, tc.detail)
		}
	}
}
