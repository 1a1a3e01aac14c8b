package console_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/api/console"
	"github.com/webhookd/webhookd/subscriptions"
)

func TestSignInForm(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	p := b.get("/console/")
	if p.status != http.StatusOK {
		t.Fatalf("GET /console/ = %d, want 200", p.status)
	}
	for _, want := range []string{`action="/console/login"`, `method="post"`, `name="key"`, `name="csrf"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("sign-in page lacks %s", want)
		}
	}
	if p := b.get("/console"); p.status != http.StatusMovedPermanently || p.header.Get("Location") != "/console/" {
		t.Errorf("GET /console = %d to %q, want 301 to /console/", p.status, p.header.Get("Location"))
	}
}

func TestSignIn(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name, key  string
		status     int
		signedInAs string
	}{
		{"account key", keyA, http.StatusSeeOther, "account " + accountA},
		{"operator key", keyOp, http.StatusSeeOther, "operator (all accounts)"},
		{"unknown key", "pk_nope", http.StatusUnauthorized, ""},
		{"empty key", "", http.StatusUnauthorized, ""},
		{"key with spaces around", "  " + keyB + " ", http.StatusSeeOther, "account " + accountB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			b.get("/console/")
			p := b.post("/console/login", url.Values{"key": {tc.key}})
			if p.status != tc.status {
				t.Fatalf("sign-in = %d, want %d", p.status, tc.status)
			}
			if tc.signedInAs == "" {
				if sessionCookie(p) != nil {
					t.Error("a refused sign-in set a session cookie")
				}
				if !strings.Contains(p.body, "That key is not valid.") {
					t.Error("a refused sign-in does not say why")
				}
				if w := b.get("/console/webhooks"); w.status != http.StatusSeeOther {
					t.Errorf("webhooks page after a refused sign-in = %d, want 303", w.status)
				}
				return
			}
			ck := sessionCookie(p)
			if ck == nil {
				t.Fatal("no session cookie")
			}
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console/" {
				t.Errorf("session cookie = %+v, want HttpOnly, SameSite=Strict, Path=/console/", ck)
			}
			if ck.Secure {
				t.Error("session cookie is Secure on a loopback address: the browser would drop it over http")
			}
			w := b.get("/console/webhooks")
			if !strings.Contains(w.body, tc.signedInAs) {
				t.Errorf("webhooks page does not say %q", tc.signedInAs)
			}
		})
	}
}

// Reached by a name other than loopback, the cookie is Secure (the
// console then has to be behind TLS).
func TestSessionCookieSecureUnlessLoopback(t *testing.T) {
	e := newEnv(t, nil)
	req, _ := http.NewRequestWithContext(context.Background(), "GET", e.srv.URL+"/console/", nil)
	req.Host = "console.example.com"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var login *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "webhookd_console_login" {
			login = c
		}
	}
	if login == nil || !login.Secure || !login.HttpOnly || login.SameSite != http.SameSiteStrictMode {
		t.Errorf("sign-in cookie for console.example.com = %+v, want Secure, HttpOnly, SameSite=Strict", login)
	}
}

func TestLoginCSRF(t *testing.T) {
	e := newEnv(t, nil)
	// No sign-in form loaded: no login cookie.
	b := e.browser()
	p := b.do("POST", "/console/login", url.Values{"key": {keyA}, "csrf": {"forged"}}, nil)
	if p.status != http.StatusForbidden || sessionCookie(p) != nil {
		t.Errorf("sign-in without the form's token = %d (session %v), want 403 and no session", p.status, sessionCookie(p) != nil)
	}
	// The form loaded, but the post comes from another site.
	b.get("/console/")
	p = b.do("POST", "/console/login", url.Values{"key": {keyA}, "csrf": {b.csrf}}, map[string]string{"Origin": "https://evil.example"})
	if p.status != http.StatusForbidden || sessionCookie(p) != nil {
		t.Errorf("cross-origin sign-in = %d, want 403 and no session", p.status)
	}
}

func TestSignedOutRequests(t *testing.T) {
	e := newEnv(t, nil)
	wh := e.webhook(accountA, "a", nil)
	b := e.browser()
	for _, path := range []string{"/console/webhooks", "/console/webhooks/" + wh.ID, "/console/topics", "/console/dead-letters"} {
		if p := b.get(path); p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/" {
			t.Errorf("GET %s signed out = %d to %q, want 303 to /console/", path, p.status, p.header.Get("Location"))
		}
	}
	for _, path := range []string{"/console/webhooks/rows", "/console/webhooks/" + wh.ID + "/state"} {
		if p := b.get(path); p.status != http.StatusUnauthorized {
			t.Errorf("GET %s signed out = %d, want 401 (console.js then goes to the sign-in form)", path, p.status)
		}
	}
	for _, action := range []string{"/enabled", "/test", "/replays", "/secret"} {
		p := b.do("POST", "/console/webhooks/"+wh.ID+action, url.Values{"enabled": {"false"}, "csrf": {"x"}}, nil)
		if p.status != http.StatusForbidden {
			t.Errorf("POST %s signed out = %d, want 403", action, p.status)
		}
	}
	if p := b.do("POST", "/console/logout", url.Values{"csrf": {"x"}}, nil); p.status != http.StatusForbidden {
		t.Errorf("POST logout signed out = %d, want 403", p.status)
	}
	if got := e.get(wh); !got.Enabled {
		t.Error("a signed-out post disabled the webhook")
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, nil)
	wh := e.webhook(accountA, "a", nil)
	b := e.signedIn(keyA)
	paths := []string{"/console/", "/console/webhooks", "/console/webhooks/rows", "/console/webhooks/" + wh.ID,
		"/console/webhooks/" + wh.ID + "/state", "/console/topics", "/console/dead-letters", "/console/nothing",
		"/console/static/console.js", "/console/static/console.css"}
	for _, path := range paths {
		p := b.get(path)
		want := map[string]string{
			"Content-Security-Policy": console.ContentSecurityPolicy,
			"X-Frame-Options":         "DENY",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "same-origin",
		}
		for h, v := range want {
			if got := p.header.Get(h); got != v {
				t.Errorf("GET %s: %s = %q, want %q", path, h, got, v)
			}
		}
		if strings.HasSuffix(path, ".js") || strings.HasSuffix(path, ".css") {
			continue
		}
		if p.header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: Cache-Control = %q, want no-store", path, p.header.Get("Cache-Control"))
		}
		checkNoInline(t, path, p.body)
	}
	for _, directive := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(console.ContentSecurityPolicy, directive) {
			t.Errorf("CSP lacks %s", directive)
		}
	}
	if strings.Contains(console.ContentSecurityPolicy, "unsafe") {
		t.Error("CSP allows something unsafe")
	}
}

var (
	inlineScript = regexp.MustCompile(`<script(?:\s[^>]*)?>`)
	styleAttr    = regexp.MustCompile(`(?i)\sstyle=|<style|\son[a-z]+=`)
)

// checkNoInline fails on inline script, style or event handlers: the CSP
// would block them, so they would be bugs.
func checkNoInline(t *testing.T, path, body string) {
	t.Helper()
	for _, tag := range inlineScript.FindAllString(body, -1) {
		if !strings.Contains(tag, `src="/console/static/`) {
			t.Errorf("GET %s: inline or foreign script %s", path, tag)
		}
	}
	if m := styleAttr.FindString(body); m != "" {
		t.Errorf("GET %s: inline style or handler %q", path, m)
	}
}

func TestAnotherAccountsWebhookIsNotFound(t *testing.T) {
	e := newEnv(t, nil)
	mine := e.webhook(accountA, "mine", nil)
	theirs := e.webhook(accountB, "theirs", nil)
	b := e.signedIn(keyA)
	if p := b.get("/console/webhooks"); !strings.Contains(p.body, "mine") || strings.Contains(p.body, "theirs") {
		t.Errorf("list shows mine %v, theirs %v; want only mine", strings.Contains(p.body, "mine"), strings.Contains(p.body, "theirs"))
	}
	for _, path := range []string{"/console/webhooks/" + theirs.ID, "/console/webhooks/" + theirs.ID + "/state", "/console/webhooks/nope"} {
		if p := b.get(path); p.status != http.StatusNotFound || !strings.Contains(p.body, "There is no such webhook.") {
			t.Errorf("GET %s = %d, want 404 'There is no such webhook.'", path, p.status)
		}
	}
	p := b.post("/console/webhooks/"+theirs.ID+"/enabled", url.Values{"enabled": {"false"}})
	if p.status != http.StatusNotFound {
		t.Errorf("disabling another account's webhook = %d, want 404", p.status)
	}
	if !e.get(theirs).Enabled {
		t.Error("another account's webhook was disabled")
	}
	if p := b.get("/console/webhooks/" + mine.ID); p.status != http.StatusOK {
		t.Errorf("own webhook page = %d, want 200", p.status)
	}
}

func TestHostileNamesAreEscaped(t *testing.T) {
	e := newEnv(t, nil)
	name := `<script>alert("name")</script>`
	desc := `"><img src=x onerror=alert('desc')>`
	wh := e.webhook(accountA, name, &desc)
	b := e.signedIn(keyA)
	for _, path := range []string{"/console/webhooks", "/console/webhooks/rows", "/console/webhooks/" + wh.ID} {
		p := b.get(path)
		if strings.Contains(p.body, name) || strings.Contains(p.body, "<img src=x") {
			t.Errorf("GET %s carries the hostile markup unescaped", path)
		}
		if !strings.Contains(p.body, html.EscapeString(name)) && !strings.Contains(p.body, "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;") {
			t.Errorf("GET %s does not show the name, escaped", path)
		}
		if !strings.Contains(p.body, "&lt;img src=x onerror=alert(&#39;desc&#39;)&gt;") {
			t.Errorf("GET %s does not show the description, escaped", path)
		}
		checkNoInline(t, path, strings.ReplaceAll(p.body, "onerror=alert(&#39;", ""))
	}
}

func TestEnableDisable(t *testing.T) {
	e := newEnv(t, nil)
	wh := e.webhook(accountA, "toggle", nil)
	b := e.signedIn(keyA)
	b.get("/console/webhooks/" + wh.ID)

	p := b.post("/console/webhooks/"+wh.ID+"/enabled", url.Values{"enabled": {"false"}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/webhooks/"+wh.ID+"?done=disabled" {
		t.Fatalf("disable = %d to %q, want 303 back to the webhook", p.status, p.header.Get("Location"))
	}
	got := e.get(wh)
	if got.Enabled || got.State.DisabledReason != "disabled by user" {
		t.Errorf("after disable: enabled %v, reason %q; want false, the PATCH path's reason", got.Enabled, got.State.DisabledReason)
	}
	page := b.get("/console/webhooks/" + wh.ID + "?done=disabled")
	if !strings.Contains(page.body, `class="badge disabled">disabled</span>`) || !strings.Contains(page.body, "disabled by user") ||
		!strings.Contains(page.body, `id="enable"`) {
		t.Error("the page does not show the webhook disabled with its reason and an Enable button")
	}
	p = b.post("/console/webhooks/"+wh.ID+"/enabled", url.Values{"enabled": {"true"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("enable = %d, want 303", p.status)
	}
	if got := e.get(wh); !got.Enabled || got.ActiveSince.Before(got.CreatedAt) || got.State.DisabledReason != "" {
		t.Errorf("after enable: %+v, want enabled with the reason cleared", got)
	}
	if p := b.post("/console/webhooks/"+wh.ID+"/enabled", url.Values{"enabled": {"maybe"}}); p.status != http.StatusBadRequest {
		t.Errorf("enabled=maybe = %d, want 400", p.status)
	}
}

func TestActionsRefuseBadCSRF(t *testing.T) {
	e := newEnv(t, nil)
	wh := e.webhook(accountA, "csrf", nil)
	b := e.signedIn(keyA)
	other := e.signedIn(keyA) // another session of the same account
	for _, tc := range []struct {
		name    string
		csrf    string
		headers map[string]string
	}{
		{"no token", "", nil},
		{"wrong token", "AAAA", nil},
		{"another session's token", other.csrf, nil},
		{"right token, another origin", b.csrf, map[string]string{"Origin": "https://evil.example"}},
		{"right token, cross-site fetch", b.csrf, map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"enabled": {"false"}}
			if tc.csrf != "" {
				form.Set("csrf", tc.csrf)
			} else {
				form.Set("csrf", "")
			}
			p := b.do("POST", "/console/webhooks/"+wh.ID+"/enabled", form, tc.headers)
			if p.status != http.StatusForbidden {
				t.Errorf("status = %d, want 403", p.status)
			}
			if !e.get(wh).Enabled {
				t.Fatal("the webhook was disabled by a refused form")
			}
		})
	}
	for _, path := range []string{"/console/logout", "/console/webhooks/" + wh.ID + "/test",
		"/console/webhooks/" + wh.ID + "/replays", "/console/webhooks/" + wh.ID + "/secret"} {
		if p := b.do("POST", path, url.Values{"csrf": {"AAAA"}}, nil); p.status != http.StatusForbidden {
			t.Errorf("POST %s with a wrong token = %d, want 403", path, p.status)
		}
	}
}

func TestHealthInWords(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	ok := e.webhook(accountA, "fine", nil)
	bad := e.webhook(accountA, "failing", nil)
	off := e.webhook(accountA, "off", nil)
	if _, err := e.store.RecordFailure(ctx, bad.ID, subscriptions.Failure{Status: 503, Error: "status 503", StartedAt: time.Now()},
		subscriptions.Backoff{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.RecordSuccess(ctx, ok.ID); err != nil {
		t.Fatal(err)
	}
	f := false
	if _, err := e.store.Update(ctx, accountA, off.ID, subscriptions.Patch{Enabled: &f}); err != nil {
		t.Fatal(err)
	}
	b := e.signedIn(keyA)
	p := b.get("/console/webhooks/rows")
	rows := rowsOf(p.body)
	want := map[string][]string{
		"fine":    {`badge healthy">healthy`},
		"failing": {`badge error">in error</span> since <time`, "HTTP 503: status 503"},
		"off":     {`badge disabled">disabled</span> since <time`, "disabled by user"},
	}
	for name, parts := range want {
		for _, part := range parts {
			if !strings.Contains(rows[name], part) {
				t.Errorf("row %s lacks %q:\n%s", name, part, rows[name])
			}
		}
	}
	// Filter and sort.
	if got := names(b.get("/console/webhooks/rows?health=error").body); strings.Join(got, ",") != "failing" {
		t.Errorf("health=error shows %v, want [failing]", got)
	}
	if got := names(b.get("/console/webhooks/rows?sort=-name").body); strings.Join(got, ",") != "off,fine,failing" {
		t.Errorf("sort=-name shows %v, want [off fine failing]", got)
	}
	if got := names(b.get("/console/webhooks/rows?sort=health").body); len(got) != 3 || got[0] != "failing" || got[2] != "fine" {
		t.Errorf("sort=health shows %v, want failing first, fine last", got)
	}
	if p := b.get("/console/webhooks?health=error"); !strings.Contains(p.body, `data-poll="/console/webhooks/rows?health=error&amp;sort=name"`) {
		t.Error("the live list does not poll with the page's filter and sort")
	}
}

var rowRE = regexp.MustCompile(`(?s)<tr class="h-[a-z]+" data-id="[^"]+">.*?</tr>`)
var nameRE = regexp.MustCompile(`class="name" href="[^"]+">([^<]*)</a>`)

// rowsOf maps each list row's webhook name to its markup.
func rowsOf(body string) map[string]string {
	out := map[string]string{}
	for _, r := range rowRE.FindAllString(body, -1) {
		if m := nameRE.FindStringSubmatch(r); m != nil {
			out[m[1]] = r
		}
	}
	return out
}

func names(body string) []string {
	var out []string
	for _, m := range nameRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestOperatorSeesAndActsOnEveryAccount(t *testing.T) {
	e := newEnv(t, nil)
	a := e.webhook(accountA, "of-a", nil)
	bw := e.webhook(accountB, "of-b", nil)
	b := e.signedIn(keyOp)
	p := b.get("/console/webhooks")
	if got := names(p.body); strings.Join(got, ",") != "of-a,of-b" {
		t.Errorf("operator's list = %v, want both accounts' webhooks", got)
	}
	if !strings.Contains(p.body, ">Account") {
		t.Error("operator's list has no account column")
	}
	if p := b.get("/console/webhooks/" + a.ID); p.status != http.StatusOK {
		t.Errorf("operator GET account A's webhook = %d", p.status)
	}
	if p := b.post("/console/webhooks/"+bw.ID+"/enabled", url.Values{"enabled": {"false"}}); p.status != http.StatusSeeOther {
		t.Fatalf("operator disabling account B's webhook = %d, want 303", p.status)
	}
	if e.get(bw).Enabled {
		t.Error("operator's disable did not take")
	}
	// An account key never reaches the operator's view.
	if p := e.signedIn(keyB).get("/console/webhooks/" + a.ID); p.status != http.StatusNotFound {
		t.Errorf("account B GET account A's webhook = %d, want 404", p.status)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signedIn(keyA)
	u, _ := url.Parse(e.srv.URL + "/console/")
	old := b.c.Jar.Cookies(u)
	p := b.post("/console/logout", nil)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/" {
		t.Fatalf("logout = %d to %q, want 303 to /console/", p.status, p.header.Get("Location"))
	}
	// The old cookie, replayed, is worthless: the session is gone in Redis.
	replay := e.browser()
	replay.c.Jar.SetCookies(u, old)
	if p := replay.get("/console/webhooks"); p.status != http.StatusSeeOther {
		t.Errorf("webhooks page with the logged-out cookie = %d, want 303 to sign-in", p.status)
	}
}

// The console spends the API's tokens: one bucket per account for both.
func TestRateLimitShared(t *testing.T) {
	lim := api.NewLimiter(0.001, 3)
	e := newEnv(t, func(c *console.Config, a *api.Config) { c.Limiter = lim; a.Limiter = lim })
	b := e.signedIn(keyA) // sign-in and the webhooks page: 2 tokens
	if code := e.apiStatus(http.DefaultClient, keyA); code != http.StatusOK {
		t.Fatalf("API call with the last token = %d, want 200", code)
	}
	p := b.get("/console/webhooks")
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" {
		t.Errorf("console page with the bucket empty = %d (Retry-After %q), want 429 with Retry-After", p.status, p.header.Get("Retry-After"))
	}
	// Another account's bucket is untouched.
	e.signedIn(keyB)
}

func TestTopicsPage(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.webhook(accountA, "a", nil)
	if err := e.store.AddTopics(ctx, accountB, "event:custom.only_b"); err != nil {
		t.Fatal(err)
	}
	p := e.signedIn(keyA).get("/console/topics")
	if !strings.Contains(p.body, topicSMS) || strings.Contains(p.body, "only_b") || strings.Contains(p.body, accountB) {
		t.Error("account A's topics page shows the wrong catalog")
	}
	if !regexp.MustCompile(`sent_sms</span></td><td data-label="Webhooks subscribed">1<`).MatchString(p.body) {
		t.Error("topics page does not count the subscribed webhook")
	}
	p = e.signedIn(keyOp).get("/console/topics")
	if !strings.Contains(p.body, "Account "+accountA) || !strings.Contains(p.body, "Account "+accountB) || !strings.Contains(p.body, "only_b") {
		t.Error("operator's topics page does not show every account")
	}
}

// fakeDeadLetters records the account it was asked for.
type fakeDeadLetters struct{ asked []string }

func (f *fakeDeadLetters) DeadLetters(_ context.Context, account string, latest int) (console.DeadLetters, error) {
	f.asked = append(f.asked, account)
	return console.DeadLetters{
		Counts: []console.ReasonCount{{Code: "not_json", Count: 3}},
		Latest: []console.DeadLetter{{Sequence: 9, At: time.Now(), Code: "not_json", Reason: "invalid character 'x'",
			Subject: topicSMS + "." + accountA, Account: accountA, Excerpt: `<script>alert("payload")</script>`, Size: 33}},
		Scanned: 1, CountsScanned: account != "", Total: 3, Kept: "7 days",
	}, nil
}

func TestDeadLettersPage(t *testing.T) {
	fake := &fakeDeadLetters{}
	e := newEnv(t, func(c *console.Config, _ *api.Config) { c.DeadLetters = fake })
	p := e.signedIn(keyA).get("/console/dead-letters")
	for _, want := range []string{"not_json", "invalid character", topicSMS + "." + accountA, "&lt;script&gt;alert(&#34;payload&#34;)&lt;/script&gt;", "Counted among the newest 1"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("dead-letter page lacks %q", want)
		}
	}
	if strings.Contains(p.body, `<script>alert("payload")`) {
		t.Error("dead-letter payload excerpt is not escaped")
	}
	e.signedIn(keyOp).get("/console/dead-letters")
	if strings.Join(fake.asked, "|") != accountA+"|" {
		t.Errorf("dead letters asked for accounts %q, want account A's then every account's", fake.asked)
	}

	bare := newEnv(t, nil)
	if p := bare.signedIn(keyA).get("/console/dead-letters"); !strings.Contains(p.body, "Not available in this build") {
		t.Error("without a reader the dead-letter page does not say it is not available")
	}
}

func (e *env) get(wh subscriptions.Webhook) subscriptions.Webhook {
	e.t.Helper()
	got, err := e.store.Lookup(context.Background(), wh.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

func sessionCookie(p page) *http.Cookie {
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == "webhookd_console" && c.MaxAge >= 0 && c.Value != "" {
			return c
		}
	}
	return nil
}
