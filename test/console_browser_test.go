package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/webhookd/webhookd/signer"
)

// consoleAdminKey is the operator key of the browser test's webhookd.
const consoleAdminKey = "console-operator-key-0123456789"

// TestConsoleInBrowser drives Debian's chromium through a real `webhookd
// serve`: sign in with an API key, watch a webhook's health turn to "in
// error" without a reload, read its attempt log and chart, run a test
// send (result inline) and a replay (progress live until done), rotate
// a secret (the next delivery signed by both, the secret never shown),
// cancel a running replay, re-enable a disabled webhook with its button,
// read the topics and dead letters, see a flow webhook's action, counts
// and attempts and preview its template, look at the list on a phone, and sign
// in as the operator. It saves a screenshot of each page under
// test/artifacts/console (or $WEBHOOKD_CONSOLE_SCREENSHOTS); the README's
// are copies. It does not depend on the consumption model, so make
// test's --partitions 0 pass leaves it out (PARTITION_TESTS).
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	began := time.Now().UTC().Add(-time.Minute) // a replay's window starts here
	e := newEnv(t, nil)
	sink := newSwitchSink(t)
	p := e.startWebhookd("--api-key", testKey+"=default", "--admin-key", consoleAdminKey)
	base := p.apiURL(t)

	failing := createNamed(t, base, "Order sync", sink.URL+"/orders")
	healthy := createNamed(t, base, "Analytics", sink.URL+"/analytics")
	paused := createNamed(t, base, "CRM export", sink.URL+"/crm")
	if code := call(t, "PATCH", base+"/api/webhooks/"+paused, fmt.Sprintf(
		`{"data":{"type":"webhook","id":%q,"attributes":{"enabled":false}}}`, paused), nil); code != http.StatusOK {
		t.Fatalf("disable CRM export = %d", code)
	}
	e.publish(topicSMS, "warm", 3)
	waitFor(t, 30*time.Second, "both enabled webhooks to receive the first events", func() bool {
		return sink.hits("/orders") > 0 && sink.hits("/analytics") > 0
	})
	e.publishRaw(topicSMS, []byte(`{"data": not json, "note": "<b>bold</b>"}`), "bad-1")

	ctx, shots := newBrowser(t)
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("%s: %v; the page says: %s", what, err, pageText(ctx))
		}
	}
	eval := func(expr string) any {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}

	run("open the sign-in form", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS(`input[name="key"]`)))
	shots.take(t, ctx, "signin")
	run("sign in", chromedp.SendKeys(chromedp.CSS(`input[name="key"]`), testKey),
		chromedp.Submit(chromedp.CSS(`input[name="key"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+failing+`"]`)))
	if got := eval(`document.querySelector('.who span').textContent`); got != "account default" {
		t.Errorf("signed in as %v, want account default", got)
	}
	badge := func(id string) string {
		return fmt.Sprintf(`(document.querySelector('tr[data-id="%s"] .badge') || {}).textContent`, id)
	}
	if got := eval(badge(failing)); got != "healthy" {
		t.Errorf("Order sync is %v before it fails, want healthy", got)
	}

	// The endpoint starts failing; the open page shows it by itself.
	eval(`window.consoleTestMarker = "no reload"`)
	sink.fail.Store(true)
	e.publish(topicSMS, "fail", 1)
	run("wait for Order sync to turn to in error", chromedp.Poll[chromedp.Void](badge(failing)+` === "in error"`,
		chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second)))
	if got := eval(`window.consoleTestMarker`); got != "no reload" {
		t.Errorf("the page was reloaded (marker %v): the health must change live", got)
	}
	if got := eval(fmt.Sprintf(`document.querySelector('tr[data-id="%s"] .health').textContent`, failing)).(string); !strings.Contains(got, "since") || !strings.Contains(got, "500") {
		t.Errorf("Order sync's health = %q, want in error since T with the last error (HTTP 500)", got)
	}
	if got := eval(badge(healthy)); got != "healthy" {
		t.Errorf("Analytics is %v, want healthy", got)
	}
	// The list's delivered counts (kept 10 s per row) catch up by themselves.
	run("wait for Order sync's failed attempts in the list", chromedp.Poll[chromedp.Void](fmt.Sprintf(
		`/[1-9][0-9]* failed/.test(document.querySelector('tr[data-id="%s"] td[data-label="Delivered, last hour"]').textContent)`, failing),
		chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second)))
	shots.take(t, ctx, "webhooks")

	// Its page: the attempt log (written off the hot path, so reload until
	// the failures are in) and the chart from it.
	waitFor(t, 60*time.Second, "Order sync's failed attempts in the console's attempt log", func() bool {
		run("open Order sync", chromedp.Navigate(base+"/console/webhooks/"+failing), chromedp.WaitVisible(chromedp.CSS("#state .badge.error")))
		return eval(`!!document.querySelector('table.attempts tr.o-failed') && !!document.querySelector('svg.chart rect.failed[height]:not([height="0"])')`) == true
	})
	if got := eval(`document.querySelector('table.attempts tr.o-failed').textContent`).(string); !strings.Contains(got, "server_error") ||
		!strings.Contains(got, "failing on purpose") {
		t.Errorf("a failed attempt reads %q, want its error class and the response excerpt", got)
	}
	if got := eval(`document.querySelector('#state').textContent`).(string); !strings.Contains(got, "failed attempts") {
		t.Errorf("Order sync's state lacks the delivered count of the last hour: %q", got)
	}
	shots.take(t, ctx, "webhook")

	// A test send to Analytics: the attempt is shown inline.
	run("open Analytics", chromedp.Navigate(base+"/console/webhooks/"+healthy), chromedp.WaitVisible(chromedp.CSS("#state .badge.healthy")))
	before := sink.hits("/analytics")
	run("test send", chromedp.Click(chromedp.CSS(`form[action$="/test"] button`)), chromedp.WaitVisible(chromedp.CSS("#test-result")))
	if got := eval(`document.querySelector('#test-result').textContent`).(string); !strings.Contains(got, "Test delivered (HTTP 200)") {
		t.Errorf("test send result = %q, want delivered with HTTP 200", got)
	}
	if sink.hits("/analytics") <= before {
		t.Error("the test send did not reach the endpoint")
	}
	shots.take(t, ctx, "testsend")

	// A replay of Analytics' window since the test began: its progress
	// shows live and reaches done without a reload.
	run("open Analytics again", chromedp.Navigate(base+"/console/webhooks/"+healthy), chromedp.WaitVisible(chromedp.CSS(`form[action$="/replays"]`)))
	eval(fmt.Sprintf(`document.querySelector('input[name="from"]').value = %q; document.querySelector('input[name="to"]').value = %q; window.consoleTestMarker = "no reload"`,
		began.Format("2006-01-02T15:04"), time.Now().UTC().Add(2*time.Minute).Format("2006-01-02T15:04")))
	before = sink.hits("/analytics")
	run("start the replay", chromedp.Click(chromedp.CSS(`form[action$="/replays"] button`)), chromedp.WaitVisible(chromedp.CSS(".notice")),
		chromedp.WaitVisible(chromedp.CSS("table.replays")))
	eval(`window.consoleTestMarker = "no reload"`)
	run("wait for the replay to finish", chromedp.Poll[chromedp.Void](`!!document.querySelector('table.replays tr.r-done')`,
		chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second)))
	if got := eval(`window.consoleTestMarker`); got != "no reload" {
		t.Errorf("the page was reloaded (marker %v): replay progress must update live", got)
	}
	if got := eval(`document.querySelector('table.replays tr.r-done').textContent`).(string); !strings.Contains(got, "sent of") || strings.Contains(got, " 0 sent of 0 found") {
		t.Errorf("the finished replay reads %q, want the events it sent", got)
	}
	if sink.hits("/analytics") <= before {
		t.Error("the replay sent nothing to the endpoint")
	}
	shots.take(t, ctx, "replay")

	// Rotate Analytics' secret: the new one never reaches a page, the
	// live part shows the rotation, and a delivery after it is signed by
	// both secrets.
	const rotated = "rotated-secret-0123456789abcdef"
	run("open Analytics to rotate its secret", chromedp.Navigate(base+"/console/webhooks/"+healthy),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/secret"]`)))
	eval(`document.querySelector('form[action$="/secret"] input[name="overlap"]').value = "1h"`)
	run("start the rotation", chromedp.SendKeys(chromedp.CSS(`form[action$="/secret"] input[name="secret"]`), rotated),
		chromedp.Click(chromedp.CSS(`form[action$="/secret"] button`)), chromedp.WaitVisible(chromedp.CSS(".notice")),
		chromedp.WaitVisible(chromedp.CSS("#state .rotation")))
	if got := eval(`document.querySelector('.notice').textContent`).(string); !strings.Contains(got, "Secret rotation started") {
		t.Errorf("after the rotation the notice reads %q", got)
	}
	if got := eval(`document.querySelector('#state .rotation').textContent`).(string); !strings.Contains(got, "secret is primary") ||
		!strings.Contains(got, "retires") {
		t.Errorf("the rotation reads %q, want which secret is primary and when the other retires", got)
	}
	if eval(fmt.Sprintf(`document.documentElement.outerHTML.includes(%q)`, rotated)) != false {
		t.Error("the page shows the new secret")
	}
	var rots struct {
		Data []struct {
			Attributes struct {
				Status string `json:"status"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if code := call(t, "GET", base+"/webhookd/webhooks/"+healthy+"/secret-rotations", "", &rots); code != http.StatusOK || len(rots.Data) != 1 {
		t.Errorf("the API lists %d rotations (status %d), want the one started in the console", len(rots.Data), code)
	}
	run("test send after the rotation", chromedp.Click(chromedp.CSS(`form[action$="/test"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#test-result")))
	last := sink.last("/analytics")
	if n := strings.Count(last.sig, "v1="); n != 2 {
		t.Errorf("Webhookd-Signature after the rotation = %q, want a digest per secret", last.sig)
	}
	for _, sec := range []string{testSecret, rotated} {
		if err := signer.Verify([]byte(sec), last.body, last.ts, last.sig); err != nil {
			t.Errorf("the delivery after the rotation does not verify with %s: %v", sec[:8]+"…", err)
		}
	}

	// Cancel a replay of the failing Order sync, which keeps it running
	// (its events are retried, never delivered).
	run("open Order sync for a replay", chromedp.Navigate(base+"/console/webhooks/"+failing),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/replays"]`)))
	eval(fmt.Sprintf(`document.querySelector('input[name="from"]').value = %q; document.querySelector('input[name="to"]').value = %q`,
		began.Format("2006-01-02T15:04"), time.Now().UTC().Add(2*time.Minute).Format("2006-01-02T15:04")))
	cancel := `table.replays tr.r-running form[action$="/cancel"] button`
	run("start the replay to cancel", chromedp.Click(chromedp.CSS(`form[action$="/replays"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".notice")), chromedp.WaitVisible(chromedp.CSS(cancel)))
	// Clicked from the page's script: the live part may swap the button
	// for an identical one between finding it and a mouse click.
	eval(fmt.Sprintf(`document.querySelector(%q).click()`, cancel))
	// Waited for from here, not with chromedp.Poll: the click navigates,
	// which ends a poll running in the page.
	waitFor(t, 60*time.Second, "the page after Cancel to say the replay is cancelled", func() bool {
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		ok, err := chromedp.Run(ectx, chromedp.Evaluate[bool](`(document.querySelector('.notice') || {textContent: ""}).textContent.includes("Replay cancelled")`+
			` && !!document.querySelector('table.replays tr.r-cancelled')`))
		return err == nil && ok
	})
	if eval(`!!document.querySelector('table.replays tr.r-cancelled form')`) != false {
		t.Error("the cancelled replay still offers Cancel")
	}
	var reps struct {
		Data []struct {
			Attributes struct {
				State string `json:"state"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if code := call(t, "GET", base+"/webhookd/webhooks/"+failing+"/replays", "", &reps); code != http.StatusOK ||
		len(reps.Data) != 1 || reps.Data[0].Attributes.State != "cancelled" {
		t.Errorf("the API lists Order sync's replays as %+v (status %d), want one cancelled", reps.Data, code)
	}

	// Re-enable the disabled webhook with its button.
	run("open CRM export", chromedp.Navigate(base+"/console/webhooks/"+paused), chromedp.WaitVisible(chromedp.CSS("#state .badge.disabled")))
	run("enable CRM export", chromedp.Click(chromedp.CSS("#enable")), chromedp.WaitVisible(chromedp.CSS(".notice")),
		chromedp.WaitVisible(chromedp.CSS("#state .badge.healthy")), chromedp.WaitVisible(chromedp.CSS("#disable")))
	var doc struct {
		Data struct {
			Attributes struct {
				Enabled bool `json:"enabled"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if call(t, "GET", base+"/api/webhooks/"+paused, "", &doc); !doc.Data.Attributes.Enabled {
		t.Error("the API says CRM export is still disabled after Enable")
	}

	run("open the topics", chromedp.Navigate(base+"/console/topics"), chromedp.WaitVisible(chromedp.CSS("table.topics")))
	if got := eval(`document.body.textContent.includes("event:klaviyo.sent_sms")`); got != true {
		t.Error("the topics page does not list event:klaviyo.sent_sms")
	}
	shots.take(t, ctx, "topics")
	run("open the dead letters", chromedp.Navigate(base+"/console/dead-letters"), chromedp.WaitVisible(chromedp.CSS("table.deadletters")))
	if got := eval(`document.querySelector('table.deadletters').textContent`).(string); !strings.Contains(got, "not_json") || !strings.Contains(got, "<b>bold</b>") {
		t.Errorf("dead letters = %q, want the not_json event with its payload as text", got)
	}
	shots.take(t, ctx, "deadletters")

	// A flow webhook, created and made live through the API and triggered
	// by Placed Orders: the Flows page shows its action and counts, its
	// page the attempts, and a template preview renders with the sample
	// event (its error too, with the line).
	flowID, actionID := createFlow(t, base, topicOrder, sink.URL+"/flow", `{"email": "{{ person.email }}", "total": {{ event.value }}}`)
	// Publish until delivery's index has the flow; poll the counts gently
	// (the API's rate limit is the console's too).
	for deadline := time.Now().Add(60 * time.Second); counts(t, base, actionID)["delivered"] < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the flow delivered nothing in 60s")
		}
		e.publishRaw(topicOrder, orderEvent(fmt.Sprintf("ord-%d", time.Now().UnixNano()), 12.5, 1), "")
		time.Sleep(time.Second)
	}
	run("open the flows", chromedp.Navigate(base+"/console/flows"), chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+flowID+`"]`)))
	row := eval(fmt.Sprintf(`document.querySelector('tr[data-id="%s"]').textContent`, flowID)).(string)
	if !strings.Contains(row, "erp") || !strings.Contains(row, strings.TrimPrefix(sink.URL, "http://")) || !strings.Contains(row, "live") ||
		!regexpMatch(`[1-9][0-9]* delivered`, row) {
		t.Errorf("the flow's row reads %q, want its action erp, the sink's host, live and its deliveries", row)
	}
	shots.take(t, ctx, "flows")
	// Both flow pages refresh their counts in place (console.js polls
	// their fragments): one more delivery shows without navigating.
	refreshes := func(sel string) {
		t.Helper()
		delivered := func() string {
			time.Sleep(100 * time.Millisecond)
			return eval(fmt.Sprintf(`document.querySelector(%q).textContent`, sel)).(string)
		}
		before := delivered()
		e.publishRaw(topicOrder, orderEvent(fmt.Sprintf("ord-%d", time.Now().UnixNano()), 12.5, 1), "")
		waitFor(t, 60*time.Second, sel+" refreshed in place", func() bool { return delivered() != before })
	}
	refreshes(`tr[data-id="` + flowID + `"] .c-delivered`)
	waitFor(t, 60*time.Second, "the flow action's attempts on its page", func() bool {
		run("open the flow", chromedp.Navigate(base+"/console/flows/"+flowID), chromedp.WaitVisible(chromedp.CSS(`form.preview textarea`)))
		return eval(`!!document.querySelector('table.attempts tr.o-delivered')`) == true
	})
	if got := eval(`document.querySelector('section.action').textContent`).(string); !strings.Contains(got, "X-Shop-Token: t0********") ||
		strings.Contains(got, "t0k3n-secret") {
		t.Errorf("the action's section reads %q, want its header masked", got)
	}
	if got := eval(`document.querySelector('table.attempts tr.o-delivered').textContent`).(string); !strings.Contains(got, "ada@example.com") ||
		!strings.Contains(got, "ord-") || !strings.Contains(got, "200") {
		t.Errorf("the flow's attempt reads %q, want its event id, recipient and status", got)
	}
	refreshes(`#state tr[data-action="` + actionID + `"] .c-delivered`)
	// role: status when it renders, alert for a fault.
	preview := func(body, role string) {
		t.Helper()
		eval(fmt.Sprintf(`document.querySelector('form.preview textarea').value = %q`, body))
		run("preview "+body, chromedp.Click(chromedp.CSS(`form.preview button`)),
			chromedp.WaitVisible(chromedp.CSS(`#preview-result[role="`+role+`"]`)))
	}
	preview(`{"hi": "{{ person.first_name }}", "n": {{ event.Quantity }}}`, "status")
	if got := eval(`document.querySelector('#preview-result').textContent`).(string); !strings.Contains(got, `"hi": "Ada"`) || !strings.Contains(got, `"n": 2`) {
		t.Errorf("the preview reads %q, want the sample's first name and quantity", got)
	}
	shots.take(t, ctx, "flow")
	preview("{\n{% if %}\n}", "alert")
	if got := eval(`document.querySelector('#preview-result[role="alert"]').textContent`).(string); !strings.Contains(got, "line 2") {
		t.Errorf("the faulty preview reads %q, want its line", got)
	}

	// A phone: the list fits the screen's width.
	run("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/console/webhooks"), chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+failing+`"]`)))
	if got := eval(`document.documentElement.scrollWidth <= window.innerWidth`); got != true {
		t.Errorf("on a 390 px screen the page is %v px wide", eval(`document.documentElement.scrollWidth`))
	}
	shots.take(t, ctx, "webhooks-phone")
	run("desktop viewport", chromedp.EmulateReset())

	// Sign out, then in as the operator.
	run("sign out", chromedp.Click(chromedp.CSS(".who button")), chromedp.WaitVisible(chromedp.CSS(`input[name="key"]`)))
	run("sign in as operator", chromedp.SendKeys(chromedp.CSS(`input[name="key"]`), consoleAdminKey),
		chromedp.Submit(chromedp.CSS(`input[name="key"]`)), chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+failing+`"]`)))
	if got := eval(`document.querySelector('.who span').textContent`); got != "operator (all accounts)" {
		t.Errorf("signed in as %v, want the operator", got)
	}
	shots.problems(t)
}

// newBrowser starts headless chromium with a fresh profile and returns a
// tab's context and the screenshot taker. A chromium that is missing or
// cannot start fails the test with one line.
func newBrowser(t *testing.T) (context.Context, *screenshots) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: apt-get install -y chromium (scripts/ensure-deps.sh does it for make test)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("chromium (%s) did not start: %v", bin, err)
	}
	s := &screenshots{dir: screenshotDir(t)}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleException || strings.Contains(m.Text, "Content Security Policy") ||
				strings.Contains(m.Text, "Refused to") {
				s.mu.Lock()
				s.bad = append(s.bad, string(m.Type)+": "+m.Text)
				s.mu.Unlock()
			}
		}
	}()
	return ctx, s
}

// screenshots saves full-page PNGs and collects what the page's console
// reported against the page (script errors, CSP refusals).
type screenshots struct {
	dir string
	mu  sync.Mutex
	bad []string
}

func (s *screenshots) take(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.WriteFile(filepath.Join(s.dir, name+".png"), png, 0o644)
	}
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
}

// problems fails the test for every console error the pages caused.
func (s *screenshots) problems(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.bad {
		t.Errorf("browser console: %s", m)
	}
	t.Logf("screenshots in %s", s.dir)
}

func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WEBHOOKD_CONSOLE_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("artifacts", "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// switchSink answers 200, or 500 once fail is set, counts requests per
// path and keeps the last request's signature per path. It does not
// check signatures: the sink tests do.
type switchSink struct {
	*httptest.Server
	fail atomic.Bool
	mu   sync.Mutex
	n    map[string]int
	sigs map[string]signedBody
}

// signedBody is a request's body and its signature headers.
type signedBody struct {
	body    []byte
	ts, sig string // Klaviyo-Timestamp, Webhookd-Signature
}

func newSwitchSink(t *testing.T) *switchSink {
	s := &switchSink{n: map[string]int{}, sigs: map[string]signedBody{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.n[r.URL.Path]++
		s.sigs[r.URL.Path] = signedBody{body: body, ts: r.Header.Get("Klaviyo-Timestamp"), sig: r.Header.Get("Webhookd-Signature")}
		s.mu.Unlock()
		if s.fail.Load() && r.URL.Path == "/orders" {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.Close)
	return s
}

// last is the last request to path.
func (s *switchSink) last(path string) signedBody {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sigs[path]
}

func (s *switchSink) hits(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[path]
}

// createNamed creates a webhook for event:klaviyo.sent_sms through the
// API and returns its id.
func createNamed(t *testing.T, base, name, endpoint string) string {
	t.Helper()
	body := fmt.Sprintf(`{"data":{"type":"webhook","attributes":{"name":%q,"description":"console test","endpoint_url":%q,"secret_key":%q},`+
		`"relationships":{"webhook-topics":{"data":[{"type":"webhook-topic","id":%q}]}}}}`, name, endpoint, testSecret, topicSMS)
	var doc struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if code := call(t, "POST", base+"/api/webhooks", body, &doc); code != http.StatusCreated {
		t.Fatalf("create %s = %d", name, code)
	}
	return doc.Data.ID
}

// pageText is the start of what the page shows, for a failure message.
func pageText(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return tail(strings.Join(strings.Fields(text), " "), 600)
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
