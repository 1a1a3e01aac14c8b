package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/api/console"
)

// fakeFlows is a FlowReader over fixed flows of two accounts, recording
// the previews asked for.
type fakeFlows struct {
	mu       sync.Mutex
	flows    []console.Flow
	previews []string // account, then the body's length
}

func (f *fakeFlows) Flows(_ context.Context, account string) ([]console.Flow, error) {
	var out []console.Flow
	for _, fl := range f.flows {
		if account == "" || fl.Account == account {
			out = append(out, fl)
		}
	}
	return out, nil
}

func (f *fakeFlows) Flow(_ context.Context, account, id string) (console.Flow, error) {
	for _, fl := range f.flows {
		if fl.ID == id && (account == "" || fl.Account == account) {
			return fl, nil
		}
	}
	return console.Flow{}, console.ErrFlowNotFound
}

// Preview answers by the body: "bad" is a fault on line 3, anything
// else renders to a hostile string.
func (f *fakeFlows) Preview(_ context.Context, account, body string) (console.FlowPreview, error) {
	f.mu.Lock()
	f.previews = append(f.previews, account+" "+strconv.Itoa(len(body)))
	f.mu.Unlock()
	if strings.HasPrefix(body, "bad") {
		return console.FlowPreview{Fault: "it exceeds a budget: " + hostile, Line: 3, Sample: `{"sample":true}`}, nil
	}
	return console.FlowPreview{Output: `{"name": "` + hostile + `"}`, Sample: `{"sample":true}`}, nil
}

// flowEnv is a console with two accounts' flows, and the attempt log's
// fake recording which webhook ids it was asked for.
func flowEnv(t *testing.T) (*env, *fakeFlows, *fakePlugins) {
	t.Helper()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	ff := &fakeFlows{flows: []console.Flow{
		{ID: "FLa", Account: accountA, Name: "Order " + hostile, Status: "live", Trigger: "Rk7x2Q", Created: at, Updated: at,
			Actions: []console.FlowAction{{ID: "ACa1", Name: "to CRM " + hostile, Status: "live",
				URL: "https://crm.example.com:8443/in?token=tok-SECRET", Body: `{"x": "{{ event.value }}"} ` + hostile,
				Headers: []console.FlowHeader{{Name: "Authorization", Masked: "Be********"}},
				Counts:  console.FlowCounts{Delivered: 41, Skipped: 2, Waiting: 3, Attempts: 50, Failed: 9}}}},
		{ID: "FLb", Account: accountB, Name: "theirs", Status: "draft", Trigger: "M2",
			Actions: []console.FlowAction{{ID: "ACb1", Name: "b", Status: "disabled", URL: "https://b.example/in"}}},
	}}
	fp := &fakePlugins{}
	e := newEnv(t, func(c *console.Config, _ *api.Config) {
		c.Plugins = console.Plugins{Attempts: fp, Flows: ff}
	})
	return e, ff, fp
}

func TestFlowsPage(t *testing.T) {
	e, _, _ := flowEnv(t)
	if p := e.browser().get("/console/flows"); p.status != http.StatusSeeOther {
		t.Errorf("flows page signed out = %d, want 303 to the sign-in", p.status)
	}
	b := e.signedIn(keyA)
	p := b.get("/console/flows")
	if p.status != http.StatusOK {
		t.Fatalf("flows page = %d", p.status)
	}
	for _, s := range []string{`href="/console/flows/FLa"`, "Order &lt;script&gt;", "to CRM &lt;script&gt;", "crm.example.com:8443",
		`<span class="badge s-live">live</span>`, "<code>Rk7x2Q</code>", "41 delivered", "2 skipped", "3 waiting to retry",
		"50 requests", "9 failed"} {
		if !strings.Contains(p.body, s) {
			t.Errorf("flows page lacks %q", s)
		}
	}
	if strings.Contains(p.body, hostile) || strings.Contains(p.body, "tok-SECRET") {
		t.Error("flows page shows a hostile name unescaped or the URL's query")
	}
	if strings.Contains(p.body, "FLb") || strings.Contains(p.body, ">Account<") {
		t.Error("an account sees another account's flow, or the account column")
	}
	op := e.signedIn(keyOp).get("/console/flows")
	if !strings.Contains(op.body, "FLa") || !strings.Contains(op.body, `href="/console/flows/FLb"`) || !strings.Contains(op.body, ">Account<") {
		t.Error("the operator does not see both accounts' flows with their account")
	}
}

func TestFlowPage(t *testing.T) {
	e, _, fp := flowEnv(t)
	b := e.signedIn(keyA)
	p := b.get("/console/flows/FLa")
	if p.status != http.StatusOK {
		t.Fatalf("flow page = %d", p.status)
	}
	if len(fp.filters) != 1 || fp.filters[0].Limit != 20 {
		t.Errorf("attempt log read %+v, want one read of the 20 latest", fp.filters)
	}
	for _, s := range []string{"Order &lt;script&gt;", "<code>ACa1</code>", "crm.example.com:8443", "<code>Authorization: Be********</code>",
		"41 delivered", "9 failed", "&lt;b&gt;upstream&lt;/b&gt; said no", "excerpt &lt;script&gt;",
		"<code>ext &lt;script&gt;", "ada&lt;script&gt;alert(1)&lt;/script&gt;@example.com",
		`action="/console/flows/FLa/preview#action-ACa1"`, `name="action" value="ACa1"`,
		// The template in the textarea, escaped.
		`{&#34;x&#34;: &#34;{{ event.value }}&#34;} &lt;script&gt;`} {
		if !strings.Contains(p.body, s) {
			t.Errorf("flow page lacks %q", s)
		}
	}
	if strings.Contains(p.body, hostile) || strings.Contains(p.body, "tok-SECRET") {
		t.Error("flow page shows hostile text unescaped or the URL's query")
	}
	if p := b.get("/console/flows/FLb"); p.status != http.StatusNotFound || !strings.Contains(p.body, "There is no such flow.") {
		t.Errorf("another account's flow = %d, want 404", p.status)
	}
	if p := b.get("/console/flows/nope"); p.status != http.StatusNotFound {
		t.Errorf("an unknown flow = %d, want 404", p.status)
	}
	if p := e.browser().get("/console/flows/FLa"); p.status != http.StatusSeeOther {
		t.Errorf("flow page signed out = %d, want 303", p.status)
	}
	if p := e.signedIn(keyOp).get("/console/flows/FLb"); p.status != http.StatusOK || !strings.Contains(p.body, "<dd>"+accountB+"</dd>") {
		t.Errorf("operator on account B's flow = %d, want 200 with its account", p.status)
	}
}

func TestFlowPreview(t *testing.T) {
	e, ff, _ := flowEnv(t)
	b := e.signedIn(keyA)
	b.get("/console/flows/FLa")
	p := b.post("/console/flows/FLa/preview", url.Values{"action": {"ACa1"}, "body": {`{"n": "{{ person.first_name }}"}`}})
	if p.status != http.StatusOK || !strings.Contains(p.body, `<pre class="rendered">{&#34;name&#34;: &#34;&lt;script&gt;`) {
		t.Errorf("preview = %d, want 200 with the rendered body escaped", p.status)
	}
	if !strings.Contains(p.body, `{&#34;n&#34;: &#34;{{ person.first_name }}&#34;}</textarea>`) {
		t.Error("the preview's form does not keep the posted template")
	}
	if strings.Contains(p.body, hostile) {
		t.Error("the rendered body is shown unescaped")
	}

	// A template over the save's 16 KiB budget reaches the sandbox whole
	// (the form takes it), and its fault is shown with its line.
	big := "bad" + strings.Repeat("x", 16<<10)
	p = b.post("/console/flows/FLa/preview", url.Values{"action": {"ACa1"}, "body": {big}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "(line 3): it exceeds a budget: &lt;script&gt;") {
		t.Errorf("over-budget preview = %d, want 422 with the fault and its line", p.status)
	}
	if strings.Contains(p.body, hostile) {
		t.Error("the fault is shown unescaped")
	}
	if want := accountA + " " + strconv.Itoa(len(big)); len(ff.previews) != 2 || ff.previews[1] != want {
		t.Errorf("previews = %v, want the second of %q", ff.previews, want)
	}

	// Refusals: no CSRF token, another site, another account's flow, an
	// action of no flow, signed out. None reaches the sandbox.
	if p := b.do("POST", "/console/flows/FLa/preview", url.Values{"action": {"ACa1"}, "body": {"{}"}}, nil); p.status != http.StatusForbidden {
		t.Errorf("preview without a CSRF token = %d, want 403", p.status)
	}
	if p := b.do("POST", "/console/flows/FLa/preview", url.Values{"csrf": {b.csrf}, "action": {"ACa1"}, "body": {"{}"}},
		map[string]string{"Origin": "https://evil.example"}); p.status != http.StatusForbidden {
		t.Errorf("preview from another origin = %d, want 403", p.status)
	}
	if p := b.post("/console/flows/FLb/preview", url.Values{"action": {"ACb1"}, "body": {"{}"}}); p.status != http.StatusNotFound {
		t.Errorf("preview on another account's flow = %d, want 404", p.status)
	}
	if p := b.post("/console/flows/FLa/preview", url.Values{"action": {"ACb1"}, "body": {"{}"}}); p.status != http.StatusNotFound {
		t.Errorf("preview of another flow's action = %d, want 404", p.status)
	}
	if p := e.browser().do("POST", "/console/flows/FLa/preview", url.Values{"action": {"ACa1"}, "body": {"{}"}}, nil); p.status != http.StatusForbidden {
		t.Errorf("preview signed out = %d, want 403", p.status)
	}
	if len(ff.previews) != 2 {
		t.Errorf("refused previews reached the sandbox: %v", ff.previews)
	}
}

// Without the flows plug-in the flow pages say so and the preview is
// refused as not available.
func TestFlowPagesUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signedIn(keyA)
	if p := b.get("/console/flows/FLa"); p.status != http.StatusNotImplemented {
		t.Errorf("flow page without flows = %d, want 501", p.status)
	}
	b.get("/console/flows")
	if p := b.post("/console/flows/FLa/preview", url.Values{"action": {"A"}, "body": {"{}"}}); p.status != http.StatusNotImplemented {
		t.Errorf("preview without flows = %d, want 501", p.status)
	}
}

// The flow list and a flow's page poll fragments with console.js, as
// the webhook pages do: the pages name them in data-poll, no inline
// script; the fragments need a session (401 without, which the script
// turns into the sign-in form), carry the security headers, show the
// counts as they are now, and are a 404 for another account's flow.
func TestFlowRefreshFragments(t *testing.T) {
	e, ff, fp := flowEnv(t)
	b := e.signedIn(keyA)
	list, flowPage := b.get("/console/flows"), b.get("/console/flows/FLa")
	for _, tc := range []struct{ name, body, poll string }{
		{"flow list", list.body, `data-poll="/console/flows/rows"`},
		{"flow page", flowPage.body, `data-poll="/console/flows/FLa/state"`},
	} {
		if !strings.Contains(tc.body, tc.poll) || !strings.Contains(tc.body, `<script src="/console/static/console.js"`) ||
			strings.Contains(tc.body, "<script>") {
			t.Errorf("%s lacks %s with console.js (and no inline script)", tc.name, tc.poll)
		}
	}

	// The counts change (delivery counted more); the fragments show it.
	ff.mu.Lock()
	ff.flows[0].Actions[0].Counts.Delivered = 42
	ff.flows[0].Status = "manual"
	ff.mu.Unlock()
	reads := len(fp.filters)
	rows := b.get("/console/flows/rows")
	state := b.get("/console/flows/FLa/state")
	for _, tc := range []struct {
		name string
		p    page
	}{{"rows", rows}, {"state", state}} {
		if tc.p.status != http.StatusOK || !strings.Contains(tc.p.body, "42 delivered") || !strings.Contains(tc.p.body, `<span class="badge s-manual">manual</span>`) ||
			strings.Contains(tc.p.body, "41 delivered") || strings.Contains(tc.p.body, "<html") {
			t.Errorf("%s fragment = %d %q, want the new counts and status, not a whole page", tc.name, tc.p.status, tc.p.body)
		}
		if strings.Contains(tc.p.body, hostile) || tc.p.header.Get("Content-Security-Policy") != console.ContentSecurityPolicy {
			t.Errorf("%s fragment shows hostile text unescaped or lacks the CSP", tc.name)
		}
	}
	if strings.Contains(rows.body, "FLb") {
		t.Error("the rows fragment shows another account's flow")
	}
	if len(fp.filters) != reads {
		t.Errorf("the state fragment read the attempt log %d times, want none", len(fp.filters)-reads)
	}
	if !strings.Contains(state.body, `href="#action-ACa1"`) || strings.Contains(state.body, "<textarea") {
		t.Error("the state fragment does not link the action's section, or holds the preview form (it would wipe what is typed)")
	}

	if p := b.get("/console/flows/FLb/state"); p.status != http.StatusNotFound {
		t.Errorf("another account's flow state = %d, want 404", p.status)
	}
	if p := b.get("/console/flows/nope/state"); p.status != http.StatusNotFound {
		t.Errorf("an unknown flow's state = %d, want 404", p.status)
	}
	if p := e.signedIn(keyOp).get("/console/flows/FLb/state"); p.status != http.StatusOK || !strings.Contains(p.body, `<span class="badge s-disabled">disabled</span>`) {
		t.Errorf("operator on account B's flow state = %d, want 200", p.status)
	}
	if p := e.signedIn(keyOp).get("/console/flows/rows"); !strings.Contains(p.body, "FLb") || !strings.Contains(p.body, ">Account<") {
		t.Error("the operator's rows fragment lacks account B's flow or the account column")
	}
	for _, path := range []string{"/console/flows/rows", "/console/flows/FLa/state"} {
		if p := e.browser().get(path); p.status != http.StatusUnauthorized {
			t.Errorf("GET %s signed out = %d, want 401", path, p.status)
		}
	}
}
