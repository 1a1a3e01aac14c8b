package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/subscriptions/flows"
	"github.com/webhookd/webhookd/test/harness"
)

const (
	keyA      = "pk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	keyB      = "pk_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	keyC      = "pk_cccccccccccccccccccccccccccccccccc"
	accountA  = "acctA1"
	accountB  = "acctB2"
	accountC  = "acctC3"
	topicSMS  = "event:klaviyo.sent_sms"
	topicOpen = "event:klaviyo.opened_email"
	secret    = "s3cr3t-DO-NOT-LEAK-0123456789"
)

// env is an API server on a real store on a private redis-server.
type env struct {
	t     testing.TB
	srv   *httptest.Server
	redis *harness.Redis
	store *subscriptions.Store
	log   *logBuffer
	// client sends the requests (nil: the server's own client).
	client *http.Client
}

// newEnv starts the API; mutate adjusts its Config.
func newEnv(t testing.TB, mutate func(*api.Config)) *env {
	t.Helper()
	r := harness.StartRedis(t)
	store := subscriptions.New(r.Client(t), subscriptions.Config{MaxWebhooksPerAccount: 3})
	cfg := api.Config{Version: "test", MaxWebhooksPerAccount: 3, Flows: flows.NewStore(r.Client(t))}
	if mutate != nil {
		mutate(&cfg)
	}
	logBuf := &logBuffer{}
	log := zerolog.New(logBuf).Level(zerolog.DebugLevel)
	keys, err := subscriptions.NewKeyring(map[string]string{keyA: accountA, keyB: accountB, keyC: accountC})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(cfg, store, keys, log))
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, redis: r, store: store, log: logBuf}
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

// doc decodes the body as a generic JSON document.
func (r response) doc(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		tb.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

// do sends a request with the Klaviyo SDK's headers and key (none if "").
func (e *env) do(method, path, key, body string) response {
	e.t.Helper()
	return e.doHeaders(method, path, body, map[string]string{"Authorization": "Klaviyo-API-Key " + key}, key == "")
}

func (e *env) doHeaders(method, path, body string, headers map[string]string, noAuth bool) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("revision", "2026-07-15")
	req.Header.Set("Accept", "application/vnd.api+json")
	if body != "" {
		req.Header.Set("Content-Type", "application/vnd.api+json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if noAuth {
		req.Header.Del("Authorization")
	}
	client := e.client
	if client == nil {
		client = e.srv.Client()
	}
	res, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte("secret_key\":")) {
		e.t.Errorf("%s %s: response carries the secret: %s", method, path, b)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// createBody is a WebhookCreateQuery for topics at url.
func createBody(name, url string, topics ...string) string {
	ids := make([]string, len(topics))
	for i, t := range topics {
		ids[i] = fmt.Sprintf(`{"type":"webhook-topic","id":%q}`, t)
	}
	return fmt.Sprintf(`{"data":{"type":"webhook","attributes":{"name":%q,"description":"d","endpoint_url":%q,"secret_key":%q},`+
		`"relationships":{"webhook-topics":{"data":[%s]}}}}`, name, url, secret, strings.Join(ids, ","))
}

// create makes a webhook for key and returns its id.
func (e *env) create(key, name string, topics ...string) string {
	e.t.Helper()
	res := e.do("POST", "/api/webhooks", key, createBody(name, "https://example.com/hooks/"+name+"?token=x", topics...))
	if res.status != http.StatusCreated {
		e.t.Fatalf("create %s = %d %s, want 201", name, res.status, res.body)
	}
	return res.doc(e.t)["data"].(map[string]any)["id"].(string)
}

// logBuffer collects log lines written by concurrent handlers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
