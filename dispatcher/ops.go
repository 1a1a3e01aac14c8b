package dispatcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/signer"
	"github.com/webhookd/webhookd/subscriptions"
)

// Operator events (README, "Operator events"). The Redis scripts decide
// each transition atomically, so exactly one replica sees it
// (subscriptions.Notifier); that replica queues one event and returns at
// once. A publisher goroutine sends it on webhookd.ops.<account>.<type>:
// with JetStream when a stream captures the subject (the Nats-Msg-Id
// header, the event id, dedupes a retried publish), with a core publish
// otherwise. With Config.OpsURL a second goroutine POSTs the same JSON,
// signed like deliveries with Config.OpsSecret, up to opsTries times.
// A full queue drops the event, counted as failed and logged (sampled):
// delivery never waits for operators.

// OpsSubjectPrefix is the subject prefix of operator events.
const OpsSubjectPrefix = "webhookd.ops"

const (
	opsQueue = 1024
	opsTries = 4 // POSTs of one event to the operator endpoint
	// opsStreamCheck is how often the publisher looks again whether a
	// stream captures operator events.
	opsStreamCheck = 30 * time.Second
	// opsWebhookID is the Klaviyo-Webhook-Id of operator POSTs.
	opsWebhookID = "webhookd-ops"
)

// OpsEvent is the JSON of an operator event.
type OpsEvent struct {
	ID                  string     `json:"id"` // UUIDv7
	Type                string     `json:"type"`
	OccurredAt          time.Time  `json:"occurred_at"`
	AccountID           string     `json:"account_id"`
	WebhookID           string     `json:"webhook_id"`
	ErrorSince          *time.Time `json:"error_since,omitempty"`
	LastStatus          *int       `json:"last_status,omitempty"`
	LastError           string     `json:"last_error,omitempty"`
	DisableAfterSeconds float64    `json:"disable_after_seconds"`
	Reason              string     `json:"reason,omitempty"`
	Replay              *OpsReplay `json:"replay,omitempty"`
}

// OpsReplay describes the replay of a replay_finished event.
type OpsReplay struct {
	ID          string     `json:"id"`
	State       string     `json:"state"`
	Reason      string     `json:"reason,omitempty"`
	Since       time.Time  `json:"since"`
	Until       time.Time  `json:"until"`
	Topics      []string   `json:"topics"`
	EventsFound int64      `json:"events_found"`
	EventsSent  int64      `json:"events_sent"`
	CreatedAt   time.Time  `json:"created_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
}

// opsEventOf builds the event of transition t.
func opsEventOf(t subscriptions.Transition, disableAfter time.Duration) OpsEvent {
	ev := OpsEvent{
		ID: uuidV7(), Type: string(t.Type), OccurredAt: t.At.UTC(), AccountID: t.AccountID, WebhookID: t.WebhookID,
		LastError: t.LastError, DisableAfterSeconds: disableAfter.Seconds(), Reason: t.Reason,
	}
	if !t.ErrorSince.IsZero() {
		es := t.ErrorSince.UTC()
		ev.ErrorSince = &es
	}
	if t.Type != subscriptions.Recovered && t.Type != subscriptions.ReplayFinished && t.LastStatus != 0 {
		st := t.LastStatus
		ev.LastStatus = &st
	}
	if r := t.Replay; r != nil {
		ev.Replay = &OpsReplay{ID: r.ID, State: string(r.State), Reason: r.Reason, Since: r.Since, Until: r.Until,
			Topics: r.Topics, EventsFound: r.EventsFound, EventsSent: r.EventsSent, CreatedAt: r.CreatedAt}
		if !r.FinishedAt.IsZero() {
			f := r.FinishedAt
			ev.Replay.FinishedAt = &f
		}
	}
	return ev
}

// OpsSubject is the subject of an event of type typ for account.
func OpsSubject(account, typ string) string {
	if !validAccount(account) {
		account = "_"
	}
	return OpsSubjectPrefix + "." + account + "." + typ
}

// opsPublisher sends operator events.
type opsPublisher struct {
	cfg    Config
	js     jetstream.JetStream
	client *http.Client
	log    zerolog.Logger
	warn   zerolog.Logger // sampled: a stuck endpoint may fail every event
	stats  *RecoveryStats

	nats, post chan opsMsg

	mu        sync.Mutex
	captured  bool // a stream captures operator events
	checkedAt time.Time
}

type opsMsg struct {
	subject, id string
	body        []byte
}

func newOpsPublisher(cfg Config, js jetstream.JetStream, log zerolog.Logger, stats *RecoveryStats) *opsPublisher {
	p := &opsPublisher{cfg: cfg, js: js, log: log, stats: stats,
		warn: log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Minute}),
		nats: make(chan opsMsg, opsQueue)}
	if cfg.OpsURL != "" {
		ocfg := cfg
		ocfg.AllowInsecureEndpoints = true // the operator's own endpoint: no egress guard
		p.client = newClient(ocfg)
		p.post = make(chan opsMsg, opsQueue)
	}
	return p
}

// notify is the store's Notifier: it queues t's event and returns.
func (p *opsPublisher) notify(t subscriptions.Transition) {
	ev := opsEventOf(t, p.cfg.DisableAfter)
	body, err := json.Marshal(ev)
	if err != nil {
		return
	}
	m := opsMsg{subject: OpsSubject(ev.AccountID, ev.Type), id: ev.ID, body: body}
	p.queue(p.nats, m, "nats")
	if p.post != nil {
		p.queue(p.post, m, "ops-url")
	}
}

func (p *opsPublisher) queue(ch chan opsMsg, m opsMsg, to string) {
	select {
	case ch <- m:
	default:
		p.stats.OpsFailed.Add(1)
		p.warn.Warn().Str("subject", m.subject).Str("to", to).Msg("operator event dropped: its queue is full")
	}
}

// Run sends queued events until ctx is done.
func (p *opsPublisher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if p.post != nil {
		wg.Go(func() { p.poster(ctx) })
	}
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			p.dropQueued(p.nats, "nats")
			return nil
		case m := <-p.nats:
			if err := p.publish(ctx, m); err != nil {
				p.stats.OpsFailed.Add(1)
				p.warn.Warn().Err(err).Str("subject", m.subject).Msg("operator event not published")
				continue
			}
			p.stats.OpsSent.Add(1)
		}
	}
}

// dropQueued counts and logs what shutdown leaves unsent.
func (p *opsPublisher) dropQueued(ch chan opsMsg, to string) {
	n := 0
	for len(ch) > 0 { // the producers may still add: this counts what is there
		<-ch
		n++
	}
	if n > 0 {
		p.stats.OpsFailed.Add(int64(n))
		p.log.Warn().Int("events", n).Str("to", to).Msg("operator events not sent: shutting down")
	}
}

// publish sends m on NATS: JetStream when a stream captures it (a
// PubAck confirms it is stored), core NATS otherwise.
func (p *opsPublisher) publish(ctx context.Context, m opsMsg) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg := &nats.Msg{Subject: m.subject, Data: m.body, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, m.id)
	msg.Header.Set("Content-Type", "application/json")
	if p.streamCaptures(ctx, m.subject) {
		_, err := p.js.PublishMsg(ctx, msg)
		return err
	}
	return p.js.Conn().PublishMsg(msg)
}

// streamCaptures reports (cached for opsStreamCheck) whether a stream
// stores operator events.
func (p *opsPublisher) streamCaptures(ctx context.Context, subject string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.checkedAt) < opsStreamCheck && !p.checkedAt.IsZero() {
		return p.captured
	}
	_, err := p.js.StreamNameBySubject(ctx, subject)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return p.captured // keep the last answer
	}
	p.captured, p.checkedAt = err == nil, time.Now()
	return p.captured
}

// poster POSTs queued events to the operator endpoint.
func (p *opsPublisher) poster(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			p.dropQueued(p.post, "ops-url")
			return
		case m := <-p.post:
			if err := p.postWithRetries(ctx, m); err != nil {
				p.stats.OpsFailed.Add(1)
				p.warn.Warn().Err(err).Str("subject", m.subject).Msg("operator event not posted to --ops-url")
				continue
			}
			p.stats.OpsPosted.Add(1)
		}
	}
}

// errOpsStatus: the operator endpoint answered something else than 2xx.
var errOpsStatus = errors.New("operator endpoint answered a non-2xx status")

// postWithRetries POSTs m up to opsTries times, a second apart and
// doubling; a 2xx answer ends it.
func (p *opsPublisher) postWithRetries(ctx context.Context, m opsMsg) error {
	var err error
	delay := time.Second
	for try := range opsTries {
		if try > 0 && !sleep(ctx, delay) {
			return ctx.Err()
		}
		delay *= 2
		if err = p.postOnce(ctx, m); err == nil {
			return nil
		}
	}
	return err
}

func (p *opsPublisher) postOnce(ctx context.Context, m opsMsg) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DeliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.OpsURL, bytes.NewReader(m.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", p.cfg.UserAgent)
	req.Header.Set("Webhookd-Ops-Subject", m.subject)
	signer.SetHeaders(req.Header, opsWebhookID, []byte(p.cfg.OpsSecret), m.body, time.Now())
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	drain(resp)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errOpsStatus
	}
	return nil
}
