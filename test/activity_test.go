package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/dispatcher/activity"
	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/test/harness"
)

// startRecordingReplica starts one more replica that records its
// requests in the attempt log through a writer of its own, and an API
// that reads the log over its own connection; it returns the API's URL.
// The writer stops after the replica (cleanups run last-in first-out).
func (e *env) startRecordingReplica() string {
	e.t.Helper()
	js, err := jetstream.New(harness.Connect(e.t, e.nats))
	if err != nil {
		e.t.Fatal(err)
	}
	acfg := activity.Config{}
	if err := activity.Ensure(context.Background(), js, acfg); err != nil {
		e.t.Fatal(err)
	}
	w := activity.NewWriter(acfg, js, zerolog.Nop())
	e.runUntilEnd("activity.Writer.Run", func(ctx context.Context) error {
		err := w.Run(ctx)
		if n := w.Stats().Dropped.Load() + w.Stats().Failed.Load(); n != 0 {
			e.t.Errorf("attempt log lost %d attempts (dropped or failed)", n)
		}
		return err
	})
	e.cfg.Activity = w
	e.startDispatcher()
	keys, err := subscriptions.ParseKeys([]string{testKey + "=default"})
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{AllowInsecureEndpoints: true, Attempts: activity.NewReader(acfg, js)},
		e.store, keys, zerolog.Nop()))
	e.t.Cleanup(srv.Close)
	return srv.URL
}

// flipServer is an endpoint on a fixed address that answers one status,
// then refuses connections (nothing listens), then answers another.
type flipServer struct {
	t    testing.TB
	addr string
	mu   sync.Mutex
	srv  *http.Server
}

func newFlipServer(t testing.TB, status int, body string) *flipServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &flipServer{t: t, addr: l.Addr().String()}
	f.serve(l, status, body)
	t.Cleanup(f.stop)
	return f
}

func (f *flipServer) url() string { return "http://" + f.addr + "/hook" }

func (f *flipServer) serve(l net.Listener, status int, body string) {
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})}
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// stop closes the listener: connections are refused from now on.
func (f *flipServer) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv != nil {
		_ = f.srv.Close()
		f.srv = nil
	}
}

// restart listens again on the same address with another answer.
func (f *flipServer) restart(status int, body string) {
	f.t.Helper()
	var l net.Listener
	waitFor(f.t, 10*time.Second, "listening again on "+f.addr, func() bool {
		var err error
		l, err = net.Listen("tcp", f.addr)
		return err == nil
	})
	f.serve(l, status, body)
}

// attemptDoc is a page of the attempts list as the API renders it.
type attemptDoc struct {
	Data []struct {
		ID         string `json:"id"`
		Type       string `json:"type"`
		Attributes struct {
			StartedAt       string   `json:"started_at"`
			Trigger         string   `json:"trigger"`
			Outcome         string   `json:"outcome"`
			Status          *int     `json:"status"`
			ErrorClass      *string  `json:"error_class"`
			Error           *string  `json:"error"`
			ResponseExcerpt *string  `json:"response_excerpt"`
			Events          int      `json:"events"`
			Attempt         int      `json:"attempt"`
			NextAttemptAt   *string  `json:"next_attempt_at"`
			ExternalIDs     []string `json:"external_ids"`
		} `json:"attributes"`
	} `json:"data"`
	Links struct {
		Next *string `json:"next"`
	} `json:"links"`
}

// attemptRow is one attempt of a listing, flattened.
type attemptRow struct {
	id, class, outcome, trigger string
	status, attempt             int
	ids                         []string
	next                        bool
	excerpt                     string
}

// listAttempts reads every page of w's attempts from the API at base
// with the query q, newest first.
func listAttempts(t testing.TB, base string, w subscriptions.Webhook, q url.Values) []attemptRow {
	t.Helper()
	next := base + "/webhookd/webhooks/" + w.ID + "/attempts?" + q.Encode()
	var rows []attemptRow
	for next != "" {
		var doc attemptDoc
		if code := call(t, "GET", next, "", &doc); code != http.StatusOK {
			t.Fatalf("GET %s = %d", next, code)
		}
		for _, d := range doc.Data {
			a := d.Attributes
			r := attemptRow{id: d.ID, outcome: a.Outcome, trigger: a.Trigger, attempt: a.Attempt, ids: a.ExternalIDs, next: a.NextAttemptAt != nil}
			if a.ErrorClass != nil {
				r.class = *a.ErrorClass
			}
			if a.Status != nil {
				r.status = *a.Status
			}
			if a.ResponseExcerpt != nil {
				r.excerpt = *a.ResponseExcerpt
			}
			rows = append(rows, r)
		}
		next = ""
		if doc.Links.Next != nil {
			next = *doc.Links.Next
		}
	}
	return rows
}

// hasClass reports whether a row of rows has error class class ("" for
// a delivered one).
func hasClass(rows []attemptRow, class string) bool {
	return slices.ContainsFunc(rows, func(r attemptRow) bool { return r.class == class && (class != "" || r.outcome == "delivered") })
}

// Done means, issue 12: an endpoint that answers 500, then refuses
// connections, then 200 shows the three kinds of attempt, in order, from
// either replica's API; the external-id filter finds the requests that
// carried a given event.
func TestAttemptLogShowsEachKindInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	apis := []string{e.startRecordingReplica(), e.startRecordingReplica()}
	ep := newFlipServer(t, http.StatusInternalServerError, `{"error":"boom"}`)
	w := e.create("default", ep.url(), topicSMS)
	ids := e.publish(topicSMS, "act", 5)

	waitFor(t, 30*time.Second, "a 500 in the attempt log", func() bool {
		return hasClass(listAttempts(t, apis[0], w, nil), "server_error")
	})
	ep.stop()
	waitFor(t, 30*time.Second, "a refused connection in the attempt log", func() bool {
		return hasClass(listAttempts(t, apis[1], w, nil), "unable_to_connect")
	})
	ep.restart(http.StatusOK, "")
	waitFor(t, 30*time.Second, "a delivery in the attempt log", func() bool {
		return hasClass(listAttempts(t, apis[0], w, nil), "")
	})
	e.waitIdle(w.ID)
	// Records are written asynchronously: wait until each event's
	// delivery is in the log, after which no request is left to record.
	waitFor(t, 30*time.Second, "every event's delivery in the attempt log", func() bool {
		got := map[string]bool{}
		for _, r := range listAttempts(t, apis[1], w, url.Values{"filter": {`equals(outcome,"delivered")`}}) {
			for _, id := range r.ids {
				got[id] = true
			}
		}
		for _, id := range ids {
			if !got[id] {
				return false
			}
		}
		return true
	})

	var lists [2][]attemptRow
	for i, base := range apis {
		lists[i] = listAttempts(t, base, w, url.Values{"page[size]": {"3"}})
	}
	if fmt.Sprint(lists[0]) != fmt.Sprint(lists[1]) {
		t.Fatalf("the replicas' APIs disagree:\n%v\n%v", lists[0], lists[1])
	}
	rows := lists[0]
	kinds := map[string]int{}
	for _, r := range rows {
		kinds[r.class+"/"+r.trigger]++
	}
	t.Logf("%d attempts by class/trigger: %v", len(rows), kinds)
	// Oldest first, the classes go 500s, refusals, deliveries, never back.
	phase := map[string]int{"server_error": 0, "unable_to_connect": 1, "": 2}
	last := 0
	for i := len(rows) - 1; i >= 0; i-- {
		r := rows[i]
		p, ok := phase[r.class]
		if !ok {
			t.Errorf("attempt %s has error class %q, want server_error, unable_to_connect or none", r.id, r.class)
			continue
		}
		if p < last {
			t.Errorf("attempt %s (%q) after a later kind: the log is out of order: %v", r.id, r.class, rows)
		}
		last = p
		switch p {
		case 0:
			if r.status != 500 || r.outcome != "failed" || r.excerpt != `{"error":"boom"}` {
				t.Errorf("500 attempt = %+v, want status 500, failed, the body as excerpt", r)
			}
		case 1:
			if r.status != 0 || r.outcome != "failed" || r.excerpt != "" {
				t.Errorf("refused attempt = %+v, want no status, failed, no excerpt", r)
			}
		case 2:
			if r.status != 200 || r.outcome != "delivered" || r.next {
				t.Errorf("delivered attempt = %+v, want status 200, no next_attempt_at", r)
			}
			// Its events failed before (500s, refusals): a retry, in
			// either consumption model (with partitions the events
			// moved to the webhook's retry subject in between).
			if r.trigger != "retry" || r.attempt < 2 {
				t.Errorf("delivered attempt = %+v, want trigger retry and attempt ≥ 2", r)
			}
		}
	}
	if oldest := rows[len(rows)-1]; oldest.trigger != "live" {
		t.Errorf("first attempt's trigger = %q, want live", oldest.trigger)
	}
	if !hasClass(rows, "server_error") || !hasClass(rows, "unable_to_connect") || !hasClass(rows, "") {
		t.Fatalf("attempts %v lack one of the three kinds", rows)
	}

	// Every request that carried ids[2], and only those, from either API.
	var want []string
	for _, r := range rows {
		if slices.Contains(r.ids, ids[2]) {
			want = append(want, r.id)
		}
	}
	if len(want) == 0 {
		t.Fatalf("no attempt carried %s: %v", ids[2], rows)
	}
	for _, base := range apis {
		got := listAttempts(t, base, w, url.Values{"filter": {`equals(external_id,"` + ids[2] + `")`}, "page[size]": {"2"}})
		var gotIDs []string
		for _, r := range got {
			gotIDs = append(gotIDs, r.id)
		}
		if strings.Join(gotIDs, ",") != strings.Join(want, ",") {
			t.Errorf("filter external_id %s from %s = %v, want %v", ids[2], base, gotIDs, want)
		}
	}
	// Each attempt reads alone from the other replica's API.
	for _, r := range rows[:min(3, len(rows))] {
		var one struct {
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if code := call(t, "GET", apis[1]+"/webhookd/webhooks/"+w.ID+"/attempts/"+r.id, "", &one); code != 200 || one.Data.ID != r.id {
			t.Errorf("GET attempt %s = %d %q", r.id, code, one.Data.ID)
		}
	}
	// Filters combine: failed requests that got a status.
	failed500 := listAttempts(t, apis[1], w, url.Values{"filter": {`and(equals(outcome,"failed"),equals(status,500))`}})
	for _, r := range failed500 {
		if r.status != 500 {
			t.Errorf("and(failed, 500) gave %+v", r)
		}
	}
	if len(failed500) == 0 {
		t.Error("and(failed, 500) found nothing")
	}
}

// Done means, issue 12: pages chain without gaps or repeats while new
// attempts arrive, whichever replica's API serves each page.
func TestAttemptPagesChainWhileAttemptsArrive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.cfg.BatchMaxEvents = 1 // one request per event: many attempts
	apis := []string{e.startRecordingReplica(), e.startRecordingReplica()}
	sink := NewSink(t, testSecret)
	w := e.create("default", sink.URL, topicSMS)
	ids := e.publish(topicSMS, "chain", 60)
	waitDelivered(t, sink, ids, 30*time.Second)
	var before []attemptRow
	waitFor(t, 30*time.Second, "60 attempts in the log", func() bool {
		before = listAttempts(t, apis[0], w, url.Values{"page[size]": {"100"}})
		return len(before) >= 60
	})

	stop := e.publishUntil("more", 5*time.Millisecond)
	seen := map[string]int{}
	next := apis[0] + "/webhookd/webhooks/" + w.ID + "/attempts?page[size]=7"
	for page := 0; next != ""; page++ {
		// Alternate replicas: a cursor from one works on the other.
		if page%2 == 1 {
			next = strings.Replace(next, apis[0], apis[1], 1)
		} else {
			next = strings.Replace(next, apis[1], apis[0], 1)
		}
		var doc attemptDoc
		if code := call(t, "GET", next, "", &doc); code != http.StatusOK {
			t.Fatalf("GET %s = %d", next, code)
		}
		for _, d := range doc.Data {
			seen[d.ID]++
		}
		next = ""
		if doc.Links.Next != nil {
			next = *doc.Links.Next
		}
		time.Sleep(20 * time.Millisecond) // let new attempts arrive between pages
	}
	published := stop()
	for id, n := range seen {
		if n > 1 {
			t.Errorf("attempt %s on %d pages", id, n)
		}
	}
	for _, r := range before {
		if seen[r.id] == 0 {
			t.Errorf("attempt %s, stored before paging began, is on no page (a gap)", r.id)
		}
	}
	if len(published) == 0 {
		t.Error("nothing published while paging: the test did not exercise new arrivals")
	}
	t.Logf("%d attempts before paging, %d seen across pages, %d events published meanwhile", len(before), len(seen), len(published))
}

// webhookd serve records in the attempt log out of the box: its API
// lists the requests and /metrics counts the writes and their lag.
func TestServeRecordsAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := e.startWebhookd("--metrics-addr", "127.0.0.1:0", "--api-key", testKey+"=default")
	metricsURL := "http://" + p.logLine(t, "metrics and pprof serving")["addr"].(string)
	apiURL := "http://" + p.logLine(t, "webhookd serving")["addr"].(string)
	sink := NewSink(t, testSecret)
	w := e.create("default", sink.URL, topicSMS)
	ids := e.publish(topicSMS, "serve-log", 20)
	waitDelivered(t, sink, ids, 30*time.Second)

	var rows []attemptRow
	waitFor(t, 20*time.Second, "the requests in the served attempt log", func() bool {
		rows = listAttempts(t, apiURL, w, nil)
		n := 0
		for _, r := range rows {
			n += len(r.ids)
		}
		return n >= len(ids)
	})
	for _, r := range rows {
		if r.outcome != "delivered" || r.status != 200 || r.trigger != "live" {
			t.Errorf("attempt %+v, want a live 200", r)
		}
	}
	m := scrape(t, metricsURL+"/metrics")
	if m["webhookd_activity_written_total"] < float64(len(rows)) || m["webhookd_activity_dropped_total"] != 0 ||
		m["webhookd_activity_write_lag_seconds_count"] < float64(len(rows)) {
		t.Errorf("activity metrics: written %v, dropped %v, lag count %v; want ≥ %d written and observed, none dropped",
			m["webhookd_activity_written_total"], m["webhookd_activity_dropped_total"], m["webhookd_activity_write_lag_seconds_count"], len(rows))
	}
}
