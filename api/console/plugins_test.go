package console_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/api/console"
	"github.com/webhookd/webhookd/subscriptions"
)

// fakePlugins implement every plug-in interface and record their calls.
type fakePlugins struct {
	mu        sync.Mutex
	tested    []string
	replayed  []string
	cancelled []string
	rotated   []string
	filters   []console.AttemptFilter
	backlogs  int // Backlog calls
	testErr   error
	replayErr error
}

func (f *fakePlugins) Backlog(context.Context, subscriptions.Webhook) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backlogs++
	return 1234, nil
}

// Delivered counts 10 events and 1 failure per minute, like a steady
// stream.
func (f *fakePlugins) Delivered(_ context.Context, _ subscriptions.Webhook, _ time.Time, step time.Duration, n int) ([]console.Bucket, bool, error) {
	minutes := int64(step / time.Minute)
	out := make([]console.Bucket, n)
	for i := range out {
		out[i] = console.Bucket{Delivered: 10 * minutes, Failed: minutes}
	}
	return out, false, nil
}

// hostile is what an endpoint or a publisher may send back.
const hostile = `<script>alert(1)</script>`

func (f *fakePlugins) Attempts(_ context.Context, wh subscriptions.Webhook, flt console.AttemptFilter) ([]console.Attempt, string, error) {
	f.filters = append(f.filters, flt)
	return []console.Attempt{{ID: "a1", At: time.Now(), Trigger: "live", Outcome: "failed", Status: 503, Events: 7,
		Duration: 120 * time.Millisecond, ErrorClass: "server_error", Error: `<b>upstream</b> said no`,
		ResponseExcerpt: "excerpt " + hostile, ExternalIDs: []string{"ext " + hostile}, Email: "ada" + hostile + "@example.com"}}, "next-cursor", nil
}

func (f *fakePlugins) SendTest(_ context.Context, wh subscriptions.Webhook) (console.Attempt, error) {
	f.tested = append(f.tested, wh.ID)
	if f.testErr != nil {
		return console.Attempt{}, f.testErr
	}
	return console.Attempt{Trigger: "test", Outcome: "delivered", Status: 200, Duration: 42 * time.Millisecond,
		ResponseExcerpt: "ok " + hostile}, nil
}

func (f *fakePlugins) StartReplay(_ context.Context, wh subscriptions.Webhook, from, to time.Time) (console.Replay, error) {
	f.replayed = append(f.replayed, wh.ID+" "+from.Format(time.RFC3339)+" "+to.Format(time.RFC3339))
	if f.replayErr != nil {
		return console.Replay{}, f.replayErr
	}
	return console.Replay{ID: "r1", From: from, To: to, State: "running"}, nil
}

func (f *fakePlugins) Replays(context.Context, subscriptions.Webhook) ([]console.Replay, error) {
	return []console.Replay{{ID: "r0", State: "running", Sent: 10, Found: 40}, {ID: "r9", State: "done", Sent: 3, Found: 3}}, nil
}

func (f *fakePlugins) CancelReplay(_ context.Context, wh subscriptions.Webhook, id string) (console.Replay, error) {
	f.cancelled = append(f.cancelled, wh.ID+" "+id)
	return console.Replay{ID: id, State: "cancelled"}, nil
}

func (f *fakePlugins) RotateSecret(_ context.Context, wh subscriptions.Webhook, secret string, overlap time.Duration) error {
	f.rotated = append(f.rotated, wh.ID+" "+secret+" "+overlap.String())
	return nil
}

func (f *fakePlugins) all() console.Plugins {
	return console.Plugins{Backlog: f, Delivered: f, Attempts: f, Test: f, Replay: f, Secrets: f}
}

func TestPluginsUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	wh := e.webhook(accountA, "plain", nil)
	b := e.signedIn(keyA)
	p := b.get("/console/webhooks/" + wh.ID)
	if n := strings.Count(p.body, "Not available in this build."); n != 5 {
		t.Errorf("webhook page says 'Not available in this build.' %d times, want 5 (chart, test send, replay, rotation, attempt log)", n)
	}
	for _, action := range []string{"/test", "/replays", "/secret"} {
		if strings.Contains(p.body, `action="/console/webhooks/`+wh.ID+action+`"`) {
			t.Errorf("the page has a %s form that cannot work", action)
		}
		if p := b.post("/console/webhooks/"+wh.ID+action, nil); p.status != http.StatusNotImplemented {
			t.Errorf("POST %s without the feature = %d, want 501", action, p.status)
		}
	}
}

func TestPlugins(t *testing.T) {
	f := &fakePlugins{}
	e := newEnv(t, func(c *console.Config, _ *api.Config) {
		c.Plugins = f.all()
	})
	wh := e.webhook(accountA, "full", nil)
	theirs := e.webhook(accountB, "theirs", nil)
	b := e.signedIn(keyA)

	list := b.get("/console/webhooks/rows")
	if !strings.Contains(list.body, "1234") || !strings.Contains(list.body, "600, 60 failed") {
		t.Error("the list does not show the backlog and the delivered counts")
	}
	p := b.get("/console/webhooks/" + wh.ID + "?outcome=failed&status=503&trigger=live&external_id=ev1&since=2026-12-01T10:00")
	if p.status != http.StatusOK {
		t.Fatalf("webhook page = %d", p.status)
	}
	want := console.AttemptFilter{Outcome: "failed", Status: 503, Trigger: "live", ExternalID: "ev1",
		Since: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Limit: 50}
	if len(f.filters) != 1 || f.filters[0] != want {
		t.Errorf("attempt filter = %+v, want %+v", f.filters, want)
	}
	if got := strings.Count(p.body, `<rect class="ok"`); got != 12 {
		t.Errorf("chart has %d bars, want 12", got)
	}
	// Every 5-minute window holds 50 delivered and 5 failed: the bars are
	// equal and stacked to the full height.
	if !strings.Contains(p.body, `y="10" width="22" height="72"`) || !strings.Contains(p.body, `y="3" width="22" height="7"`) {
		t.Error("chart bars are not 50 delivered (72 px) under 5 failed (7 px)")
	}
	for _, s := range []string{"&lt;b&gt;upstream&lt;/b&gt; said no", "server_error", "excerpt &lt;script&gt;alert(1)&lt;/script&gt;",
		"ext &lt;script&gt;alert(1)&lt;/script&gt;", "10 sent of 40 found", "3 sent of 3 found", "at most 50", "at most 5)",
		"this hour 600 delivered, 60 failed", "600 events, 60 failed attempts",
		`action="/console/webhooks/` + wh.ID + `/replays/r0/cancel"`,
		`action="/console/webhooks/` + wh.ID + `/test"`, `action="/console/webhooks/` + wh.ID + `/replays"`,
		`action="/console/webhooks/` + wh.ID + `/secret"`} {
		if !strings.Contains(p.body, s) {
			t.Errorf("webhook page lacks %q", s)
		}
	}
	if strings.Contains(p.body, hostile) {
		t.Error("webhook page shows a response excerpt or external id unescaped")
	}
	if strings.Contains(p.body, "/replays/r9/cancel") {
		t.Error("a finished replay has a cancel button")
	}
	// The next page keeps the filter.
	if !strings.Contains(p.body, `href="?cursor=next-cursor&amp;external_id=ev1&amp;outcome=failed&amp;since=2026-12-01T10%3A00&amp;status=503&amp;trigger=live"`) {
		t.Error("the older-attempts link does not keep the filter")
	}
	if strings.Contains(p.body, "Not available") {
		t.Error("webhook page says a section is not available though every plug-in is set")
	}
	if p := b.get("/console/webhooks/" + wh.ID + "?status=abc"); p.status != http.StatusBadRequest {
		t.Errorf("status=abc = %d, want 400", p.status)
	}

	if p := b.post("/console/webhooks/"+wh.ID+"/test", nil); p.status != http.StatusOK || !strings.Contains(p.body, "Test delivered (HTTP 200) in 42ms") ||
		!strings.Contains(p.body, "ok &lt;script&gt;") || strings.Contains(p.body, hostile) {
		t.Errorf("test send = %d, want 200 with the result inline, its excerpt escaped", p.status)
	}
	p = b.post("/console/webhooks/"+wh.ID+"/replays", url.Values{"from": {"2026-12-01T10:00"}, "to": {"2026-12-01T11:30"}})
	if p.status != http.StatusSeeOther || len(f.replayed) != 1 || f.replayed[0] != wh.ID+" 2026-12-01T10:00:00Z 2026-12-01T11:30:00Z" {
		t.Errorf("replay = %d, calls %v", p.status, f.replayed)
	}
	if p := b.post("/console/webhooks/"+wh.ID+"/replays", url.Values{"from": {"2026-12-01T11:00"}, "to": {"2026-12-01T10:00"}}); p.status != http.StatusBadRequest {
		t.Errorf("replay with the end first = %d, want 400", p.status)
	}
	if p := b.post("/console/webhooks/"+wh.ID+"/replays", url.Values{"from": {"2999-12-01T10:00"}, "to": {"2999-12-01T11:00"}}); p.status != http.StatusBadRequest {
		t.Errorf("replay of a future window = %d, want 400", p.status)
	}
	p = b.post("/console/webhooks/"+wh.ID+"/replays/r0/cancel", nil)
	if p.status != http.StatusSeeOther || len(f.cancelled) != 1 || f.cancelled[0] != wh.ID+" r0" {
		t.Errorf("cancel = %d, calls %v", p.status, f.cancelled)
	}
	p = b.post("/console/webhooks/"+wh.ID+"/secret", url.Values{"secret": {"new-secret-value"}, "overlap": {"24h"}})
	if p.status != http.StatusSeeOther || len(f.rotated) != 1 || f.rotated[0] != wh.ID+" new-secret-value 24h0m0s" {
		t.Errorf("rotate = %d, calls %v", p.status, f.rotated)
	}
	if p := b.post("/console/webhooks/"+wh.ID+"/secret", url.Values{"secret": {""}, "overlap": {"24h"}}); p.status != http.StatusBadRequest {
		t.Errorf("rotate without a secret = %d, want 400", p.status)
	}

	// Another account's webhook: 404 for every action, no plug-in called.
	for _, action := range []string{"/test", "/replays", "/secret", "/replays/r0/cancel"} {
		p := b.post("/console/webhooks/"+theirs.ID+action, url.Values{"from": {"2026-12-01T10:00"}, "to": {"2026-12-01T11:00"},
			"secret": {"x"}, "overlap": {"1h"}})
		if p.status != http.StatusNotFound {
			t.Errorf("POST %s on another account's webhook = %d, want 404", action, p.status)
		}
	}
	if len(f.tested) != 1 || len(f.replayed) != 1 || len(f.rotated) != 1 || len(f.cancelled) != 1 {
		t.Errorf("plug-ins called for another account's webhook: %v %v %v %v", f.tested, f.replayed, f.rotated, f.cancelled)
	}
	if p := b.get("/console/webhooks/" + theirs.ID + "/state"); p.status != http.StatusNotFound {
		t.Errorf("state of another account's webhook = %d, want 404", p.status)
	}

	// The operator acts on either account's webhooks.
	op := e.signedIn(keyOp)
	for _, action := range []string{"/test", "/replays", "/secret", "/replays/r0/cancel"} {
		p := op.post("/console/webhooks/"+theirs.ID+action, url.Values{"from": {"2026-12-01T10:00"}, "to": {"2026-12-01T11:00"},
			"secret": {"operator-secret-1"}, "overlap": {"1h"}})
		if p.status != http.StatusOK && p.status != http.StatusSeeOther {
			t.Errorf("operator POST %s on account B's webhook = %d, want 200 or 303", action, p.status)
		}
	}
	if len(f.tested) != 2 || len(f.replayed) != 2 || len(f.rotated) != 2 || len(f.cancelled) != 2 {
		t.Errorf("operator's actions did not reach the plug-ins: %v %v %v %v", f.tested, f.replayed, f.rotated, f.cancelled)
	}

	// Every new form refuses a bad CSRF token before calling a plug-in.
	for _, action := range []string{"/test", "/replays", "/secret", "/replays/r0/cancel"} {
		p := b.do("POST", "/console/webhooks/"+wh.ID+action, url.Values{"csrf": {"AAAA"}, "from": {"2026-12-01T10:00"},
			"to": {"2026-12-01T11:00"}, "secret": {"csrf-secret-12345"}, "overlap": {"1h"}}, nil)
		if p.status != http.StatusForbidden {
			t.Errorf("POST %s with a wrong CSRF token = %d, want 403", action, p.status)
		}
	}
	if len(f.tested) != 2 || len(f.replayed) != 2 || len(f.rotated) != 2 || len(f.cancelled) != 2 {
		t.Errorf("plug-ins called by refused forms: %v %v %v %v", f.tested, f.replayed, f.rotated, f.cancelled)
	}
}

// A plug-in's UserError reaches the viewer with its status and message;
// any other error is a 500 whose text stays in the log.
func TestPluginErrorsShown(t *testing.T) {
	f := &fakePlugins{testErr: console.UserError(http.StatusTooManyRequests, "Every in-flight request slot is in use."),
		replayErr: console.UserError(http.StatusConflict, "This webhook is disabled.")}
	e := newEnv(t, func(c *console.Config, _ *api.Config) { c.Plugins = f.all() })
	wh := e.webhook(accountA, "errs", nil)
	b := e.signedIn(keyA)
	b.get("/console/webhooks/" + wh.ID)
	if p := b.post("/console/webhooks/"+wh.ID+"/test", nil); p.status != http.StatusTooManyRequests ||
		!strings.Contains(p.body, `<p id="test-result" class="result failed" role="alert">Every in-flight request slot is in use.</p>`) {
		t.Errorf("test send without a slot = %d, want 429 with the message inline on the webhook's page", p.status)
	}
	p := b.post("/console/webhooks/"+wh.ID+"/replays", url.Values{"from": {"2026-12-01T10:00"}, "to": {"2026-12-01T11:00"}})
	if p.status != http.StatusConflict || !strings.Contains(p.body, "This webhook is disabled.") {
		t.Errorf("replay of a disabled webhook = %d, want 409 with the message", p.status)
	}
	f.testErr = errors.New("nats: connection closed at 10.0.0.7")
	if p := b.post("/console/webhooks/"+wh.ID+"/test", nil); p.status != http.StatusInternalServerError || strings.Contains(p.body, "10.0.0.7") {
		t.Errorf("test send with an internal error = %d, want 500 without its text", p.status)
	}
}

// The list reads the costly figures of at most 20 webhooks per refresh;
// the others show "…" until a later refresh reads them.
func TestListFiguresWithinBudget(t *testing.T) {
	f := &fakePlugins{}
	e := newEnv(t, func(c *console.Config, _ *api.Config) { c.Plugins = console.Plugins{Backlog: f, Delivered: f} })
	for i := range 25 { // 10 per account at most
		e.webhook([]string{accountA, accountB, "acctC3"}[i/10], fmt.Sprintf("wh-%02d", i), nil)
	}
	b := e.signedIn(keyOp) // the sign-in lands on the list: the first refresh
	if f.backlogs != 20 {
		t.Errorf("first list read %d backlogs, want 20", f.backlogs)
	}
	p := b.get("/console/webhooks/rows")
	if f.backlogs != 25 {
		t.Errorf("after the second list %d backlogs were read, want 25", f.backlogs)
	}
	if n := strings.Count(p.body, ">1234<"); n != 25 {
		t.Errorf("second list shows %d backlogs, want 25", n)
	}
	b.get("/console/webhooks/rows")
	if f.backlogs != 25 {
		t.Errorf("a third list within the figures' lifetime read %d backlogs, want still 25", f.backlogs)
	}
	// A webhook's own page and its live part read afresh.
	id := regexp.MustCompile(`data-id="([^"]+)"`).FindStringSubmatch(p.body)[1]
	b.get("/console/webhooks/" + id)
	b.get("/console/webhooks/" + id + "/state")
	if f.backlogs != 27 {
		t.Errorf("after a webhook's page and its live part %d backlogs were read, want 27", f.backlogs)
	}
}

// A staged rotation shows which secret is primary and when the other
// retires; the secrets never.
func TestRotationState(t *testing.T) {
	e := newEnv(t, nil)
	wh := e.webhook(accountA, "rotating", nil)
	promote := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	retire := promote.Add(24 * time.Hour)
	newSecret := "the-new-secret-0123456789"
	if _, err := e.store.Rotate(context.Background(), accountA, wh.ID, subscriptions.NewRotation{Secret: newSecret,
		PromoteAt: promote, RetireAt: retire}); err != nil {
		t.Fatal(err)
	}
	p := e.signedIn(keyA).get("/console/webhooks/" + wh.ID)
	want := "pending: the current secret is primary; the new one becomes primary <time datetime=\"" + promote.Format(time.RFC3339)
	if !strings.Contains(p.body, want) || !strings.Contains(p.body, "the previous one retires <time datetime=\""+retire.Format(time.RFC3339)) {
		t.Errorf("webhook page lacks the rotation state %q", want)
	}
	if strings.Contains(p.body, newSecret) {
		t.Error("webhook page shows the new secret")
	}
}

func TestFlowsPageUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	p := e.signedIn(keyA).get("/console/flows")
	if p.status != http.StatusOK || !strings.Contains(p.body, "Not available in this build") {
		t.Errorf("flows page = %d, want 200 saying flows are not available", p.status)
	}
}
