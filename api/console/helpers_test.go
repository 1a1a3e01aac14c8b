package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/api/console"
	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/test/harness"
)

const (
	keyA     = "pk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	keyB     = "pk_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	keyOp    = "op_oooooooooooooooooooooooooooooooooo"
	accountA = "acctA1"
	accountB = "acctB2"
	topicSMS = "event:klaviyo.sent_sms"
	secret   = "s3cr3t-DO-NOT-LEAK-0123456789"
)

// env is the API with the console mounted, on a real store and real
// Redis sessions on a private redis-server.
type env struct {
	t     testing.TB
	srv   *httptest.Server
	store *subscriptions.Store
}

// newEnv starts it; mutate adjusts the console's and the API's config.
func newEnv(t testing.TB, mutate func(*console.Config, *api.Config)) *env {
	t.Helper()
	r := harness.StartRedis(t)
	rdb := r.Client(t)
	store := subscriptions.New(rdb, subscriptions.Config{})
	keys, err := subscriptions.NewKeyring(map[string]string{keyA: accountA, keyB: accountB})
	if err != nil {
		t.Fatal(err)
	}
	op, err := subscriptions.NewKeyring(map[string]string{keyOp: "operator"})
	if err != nil {
		t.Fatal(err)
	}
	ccfg := console.Config{Store: store, Keys: keys, Operator: op, Sessions: console.NewRedisSessions(rdb),
		Accounts: []string{accountA, accountB}, Version: "test", Log: zerolog.New(io.Discard)}
	acfg := api.Config{Version: "test"}
	if mutate != nil {
		mutate(&ccfg, &acfg)
	}
	con, err := console.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	acfg.Console = con
	srv := httptest.NewServer(api.New(acfg, store, keys, zerolog.New(io.Discard)))
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, store: store}
}

// webhook creates a webhook of account straight in the store.
func (e *env) webhook(account, name string, desc *string) subscriptions.Webhook {
	e.t.Helper()
	ctx := context.Background()
	if err := e.store.AddTopics(ctx, account, topicSMS); err != nil {
		e.t.Fatal(err)
	}
	wh, err := e.store.Create(ctx, subscriptions.NewWebhook{AccountID: account, Name: name, Description: desc,
		EndpointURL: "https://hooks.example.com/in?token=x", Secret: secret, Topics: []string{topicSMS}})
	if err != nil {
		e.t.Fatal(err)
	}
	return wh
}

// browser is a client with a cookie jar that does not follow redirects.
type browser struct {
	e    *env
	c    *http.Client
	csrf string // of the signed-in session, read from the last page
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// page is one response.
type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, headers map[string]string) page {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(context.Background(), method, b.e.srv.URL+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	p := page{status: res.StatusCode, header: res.Header, body: string(raw)}
	if strings.Contains(p.body, secret) {
		b.e.t.Errorf("%s %s: the page shows the webhook's secret", method, path)
	}
	if m := csrfField.FindStringSubmatch(p.body); m != nil {
		b.csrf = m[1]
	}
	return p
}

func (b *browser) get(path string) page { b.e.t.Helper(); return b.do("GET", path, nil, nil) }

// post sends a form with the session's CSRF token added.
func (b *browser) post(path string, form url.Values) page {
	b.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" {
		form.Set("csrf", b.csrf)
	}
	return b.do("POST", path, form, nil)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in with key through the form and fails the test unless it
// lands on the webhooks page.
func (b *browser) signIn(key string) {
	b.e.t.Helper()
	if p := b.get("/console/"); p.status != http.StatusOK {
		b.e.t.Fatalf("GET /console/ = %d, want 200", p.status)
	}
	p := b.post("/console/login", url.Values{"key": {key}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/webhooks" {
		b.e.t.Fatalf("sign-in = %d to %q, want 303 to /console/webhooks; body %s", p.status, p.header.Get("Location"), p.body)
	}
	if p := b.get("/console/webhooks"); p.status != http.StatusOK {
		b.e.t.Fatalf("webhooks page after sign-in = %d, want 200", p.status)
	}
}

// signedIn returns a browser signed in with key.
func (e *env) signedIn(key string) *browser {
	e.t.Helper()
	b := e.browser()
	b.signIn(key)
	return b
}

// apiStatus is the status of GET /api/webhooks with key, sent by client.
func (e *env) apiStatus(client *http.Client, key string) int {
	e.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), "GET", e.srv.URL+"/api/webhooks", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Klaviyo-API-Key "+key)
	res, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
