package dispatcher

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/test/harness"
)

// An account that cannot be a subject token is replaced by "_" in the
// operator event's subject; any other account is its own token.
func TestOpsSubjectAccountToken(t *testing.T) {
	for account, want := range map[string]string{
		"acme":     "webhookd.ops.acme.failing",
		"A-1_x":    "webhookd.ops.A-1_x.failing",
		"":         "webhookd.ops._.failing",
		"bad.acct": "webhookd.ops._.failing",
		"a*":       "webhookd.ops._.failing",
		"a>":       "webhookd.ops._.failing",
		"a b":      "webhookd.ops._.failing",
		"a\tb":     "webhookd.ops._.failing",
		"a\nb":     "webhookd.ops._.failing",
	} {
		if got := OpsSubject(account, "failing"); got != want {
			t.Errorf("OpsSubject(%q) = %q, want %q", account, got, want)
		}
	}
}

// opsSeen is one operator event as received: on NATS or at --ops-url.
type opsSeen struct {
	subject string
	ev      OpsEvent
}

// opsSeenLog collects operator events by webhook id.
type opsSeenLog struct {
	mu   sync.Mutex
	byID map[string][]opsSeen
}

func (l *opsSeenLog) add(t *testing.T, subject string, body []byte) {
	var ev OpsEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Errorf("operator event on %s is not JSON: %v", subject, err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byID == nil {
		l.byID = map[string][]opsSeen{}
	}
	l.byID[ev.WebhookID] = append(l.byID[ev.WebhookID], opsSeen{subject, ev})
}

func (l *opsSeenLog) of(id string) []opsSeen {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]opsSeen(nil), l.byID[id]...)
}

// The operator events of a webhook whose stored account is not a subject
// token go to webhookd.ops._.<type> on NATS and at --ops-url (its
// Webhookd-Ops-Subject), with account_id as stored: an account with a
// dot (Store.Create takes any non-empty account; only API keys are held
// to letters, digits, '_' and '-'), and a record that lost its
// account_id. A valid account keeps its own subject. Real Redis (the
// failure script decides the transition and returns the account), NATS
// and an HTTP operator endpoint.
func TestOpsEventAccountFallback(t *testing.T) {
	t.Parallel()
	js, err := jetstream.New(harness.Connect(t, harness.NATS(t)))
	if err != nil {
		t.Fatal(err)
	}
	r := harness.StartRedis(t)
	rdb := r.Client(t)
	store := subscriptions.New(rdb, subscriptions.Config{})

	var onNATS, atURL opsSeenLog
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		atURL.add(t, r.Header.Get("Webhookd-Ops-Subject"), body)
	}))
	t.Cleanup(recv.Close)
	sub, err := js.Conn().Subscribe(OpsSubjectPrefix+".>", func(m *nats.Msg) { onNATS.add(t, m.Subject, m.Data) })
	if err != nil {
		t.Fatal(err)
	}
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}

	cfg := Config{OpsURL: recv.URL + "/ops", OpsSecret: "ops-secret-0123456789", DisableAfter: time.Hour}.withDefaults()
	p := newOpsPublisher(cfg, js, zerolog.Nop(), new(RecoveryStats))
	store.SetNotifier(p.notify)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; _ = sub.Unsubscribe() })

	create := func(account string) subscriptions.Webhook {
		w, err := store.Create(ctx, subscriptions.NewWebhook{AccountID: account, Name: "ops", EndpointURL: "https://example.com/hook",
			Secret: "secret-0123456789", Topics: []string{"event:klaviyo.sent_sms"}})
		if err != nil {
			t.Fatalf("Create(%s): %v", account, err)
		}
		return w
	}
	valid, dotted, lost := create("acme"), create("bad.acct"), create("lost")
	if err := rdb.HDel(ctx, "wh:{"+lost.ID+"}", "account_id").Err(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name             string
		w                subscriptions.Webhook
		account, subject string
	}{
		{"valid account", valid, "acme", "webhookd.ops.acme.failing"},
		{"account with a dot", dotted, "bad.acct", "webhookd.ops._.failing"},
		{"record without an account", lost, "", "webhookd.ops._.failing"},
	}
	for _, c := range cases {
		fr, err := store.RecordFailure(ctx, c.w.ID, subscriptions.Failure{Status: 503, Error: "status 503", StartedAt: time.Now()},
			subscriptions.Backoff{DisableAfter: time.Hour})
		if err != nil || fr.Gone {
			t.Fatalf("%s: RecordFailure = %+v, %v; want the error state to begin", c.name, fr, err)
		}
	}
	for _, c := range cases {
		for _, l := range []struct {
			name string
			log  *opsSeenLog
		}{{"NATS", &onNATS}, {"--ops-url", &atURL}} {
			waitFor(t, c.name+"'s event on "+l.name, func() bool { return len(l.log.of(c.w.ID)) > 0 })
			got := l.log.of(c.w.ID)
			if len(got) != 1 || got[0].subject != c.subject || got[0].ev.AccountID != c.account || got[0].ev.Type != "failing" {
				t.Errorf("%s on %s: %+v; want one failing event on %s with account_id %q", c.name, l.name, got, c.subject, c.account)
			}
		}
	}
	if n := p.stats.OpsFailed.Load(); n != 0 {
		t.Errorf("OpsFailed = %d, want 0", n)
	}
}
