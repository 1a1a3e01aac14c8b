package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/api/console"
	"github.com/webhookd/webhookd/subscriptions"
)

// fakePlugins implement every plug-in interface and record their calls.
type fakePlugins struct {
	tested   []string
	replayed []string
	rotated  []string
	filters  []console.AttemptFilter
}

func (f *fakePlugins) Backlog(context.Context, subscriptions.Webhook) (int64, error) {
	return 1234, nil
}

// Delivered counts 10 events and 1 failure per minute, like a steady
// stream.
func (f *fakePlugins) Delivered(_ context.Context, _ string, since time.Time) (int64, int64, error) {
	minutes := int64(time.Since(since) / time.Minute)
	return 10 * minutes, minutes, nil
}

func (f *fakePlugins) Attempts(_ context.Context, id string, flt console.AttemptFilter) ([]console.Attempt, string, error) {
	f.filters = append(f.filters, flt)
	return []console.Attempt{{ID: "a1", At: time.Now(), Trigger: "live", Outcome: "failed", Status: 503, Events: 7,
		Duration: 120 * time.Millisecond, Error: `<b>upstream</b> said no`}}, "next-cursor", nil
}

func (f *fakePlugins) SendTest(_ context.Context, wh subscriptions.Webhook) (console.Attempt, error) {
	f.tested = append(f.tested, wh.ID)
	return console.Attempt{Trigger: "test", Outcome: "delivered", Status: 200, Duration: 42 * time.Millisecond}, nil
}

func (f *fakePlugins) StartReplay(_ context.Context, wh subscriptions.Webhook, from, to time.Time) (console.Replay, error) {
	f.replayed = append(f.replayed, wh.ID+" "+from.Format(time.RFC3339)+" "+to.Format(time.RFC3339))
	return console.Replay{ID: "r1", From: from, To: to, State: "running"}, nil
}

func (f *fakePlugins) Replays(context.Context, subscriptions.Webhook) ([]console.Replay, error) {
	return []console.Replay{{ID: "r0", State: "running", Sent: 10, Total: 40}}, nil
}

func (f *fakePlugins) RotateSecret(_ context.Context, wh subscriptions.Webhook, secret string, overlap time.Duration) error {
	f.rotated = append(f.rotated, wh.ID+" "+secret+" "+overlap.String())
	return nil
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
		c.Plugins = console.Plugins{Backlog: f, Delivered: f, Attempts: f, Test: f, Replay: f, Secrets: f}
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
	for _, s := range []string{"&lt;b&gt;upstream&lt;/b&gt; said no", "?cursor=next-cursor", "10 of 40", "at most 50", "at most 5)",
		`action="/console/webhooks/` + wh.ID + `/test"`, `action="/console/webhooks/` + wh.ID + `/replays"`,
		`action="/console/webhooks/` + wh.ID + `/secret"`} {
		if !strings.Contains(p.body, s) {
			t.Errorf("webhook page lacks %q", s)
		}
	}
	if strings.Contains(p.body, "Not available") {
		t.Error("webhook page says a section is not available though every plug-in is set")
	}
	if p := b.get("/console/webhooks/" + wh.ID + "?status=abc"); p.status != http.StatusBadRequest {
		t.Errorf("status=abc = %d, want 400", p.status)
	}

	if p := b.post("/console/webhooks/"+wh.ID+"/test", nil); p.status != http.StatusOK || !strings.Contains(p.body, "Test delivered (HTTP 200) in 42ms") {
		t.Errorf("test send = %d, want 200 with the result inline", p.status)
	}
	p = b.post("/console/webhooks/"+wh.ID+"/replays", url.Values{"from": {"2026-12-01T10:00"}, "to": {"2026-12-01T11:30"}})
	if p.status != http.StatusSeeOther || len(f.replayed) != 1 || f.replayed[0] != wh.ID+" 2026-12-01T10:00:00Z 2026-12-01T11:30:00Z" {
		t.Errorf("replay = %d, calls %v", p.status, f.replayed)
	}
	if p := b.post("/console/webhooks/"+wh.ID+"/replays", url.Values{"from": {"2026-12-01T11:00"}, "to": {"2026-12-01T10:00"}}); p.status != http.StatusBadRequest {
		t.Errorf("replay with the end first = %d, want 400", p.status)
	}
	p = b.post("/console/webhooks/"+wh.ID+"/secret", url.Values{"secret": {"new-secret-value"}, "overlap": {"24h"}})
	if p.status != http.StatusSeeOther || len(f.rotated) != 1 || f.rotated[0] != wh.ID+" new-secret-value 24h0m0s" {
		t.Errorf("rotate = %d, calls %v", p.status, f.rotated)
	}
	if p := b.post("/console/webhooks/"+wh.ID+"/secret", url.Values{"secret": {""}, "overlap": {"24h"}}); p.status != http.StatusBadRequest {
		t.Errorf("rotate without a secret = %d, want 400", p.status)
	}

	// Another account's webhook: 404 for every action, no plug-in called.
	for _, action := range []string{"/test", "/replays", "/secret"} {
		p := b.post("/console/webhooks/"+theirs.ID+action, url.Values{"from": {"2026-12-01T10:00"}, "to": {"2026-12-01T11:00"},
			"secret": {"x"}, "overlap": {"1h"}})
		if p.status != http.StatusNotFound {
			t.Errorf("POST %s on another account's webhook = %d, want 404", action, p.status)
		}
	}
	if len(f.tested) != 1 || len(f.replayed) != 1 || len(f.rotated) != 1 {
		t.Errorf("plug-ins called for another account's webhook: %v %v %v", f.tested, f.replayed, f.rotated)
	}
}
