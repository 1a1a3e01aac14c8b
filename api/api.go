// Package api serves the HTTP API that manages webhooks. It is
// wire-compatible with Klaviyo's public Webhooks API (JSON:API documents,
// both trailing-slash forms, percent-encoded topic ids, exact status
// codes), so Klaviyo's official SDKs work against it unchanged, and adds a
// few extensions under /webhookd/ and /healthz that Klaviyo does not use.
//
// Every route is listed in routes.go; errors become HTTP statuses and
// JSON:API error objects in exactly one place, errors.go.
package api

import (
	"context"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api/authlimit"
	"github.com/webhookd/webhookd/dispatcher/activity"
	"github.com/webhookd/webhookd/subscriptions"
)

// Config configures the API handler. Zero fields take the defaults shown.
type Config struct {
	// AllowInsecureEndpoints permits http:// endpoints and loopback or
	// private hosts (false: https to public hosts only). For local
	// development and tests.
	AllowInsecureEndpoints bool
	// MaxBodyBytes caps a request body (64 KiB); larger bodies get 413.
	// A webhook request is a few hundred bytes plus its topic list.
	MaxBodyBytes int64
	// MaxWebhooksPerAccount is the store's limit, only quoted in the
	// error a create over the limit gets (10, as Klaviyo and
	// subscriptions.Config). The store enforces it.
	MaxWebhooksPerAccount int
	// RateLimit is the steady rate of API requests per second each
	// account may make, RateBurst the burst above it; beyond them the
	// API answers 429 "throttled" with Retry-After, as Klaviyo does. Zero
	// RateLimit: no limit.
	RateLimit float64
	RateBurst int
	// Flows, when set, serves Klaviyo's Flows API (flow webhooks) on
	// this store; nil: those routes answer 404.
	Flows FlowStore
	// Attempts is the attempt log behind GET
	// /webhookd/webhooks/{id}/attempts (nil: those routes answer 404).
	Attempts AttemptLog
	// Version is reported by /healthz in the Webhookd-Version header
	// ("dev").
	Version string
	// Deliveries serves replays, test sends and the live figures of
	// delivery-state (backlog, in_flight); *dispatcher.Dispatcher
	// implements it. Nil: those routes answer 404 and the figures are
	// null.
	Deliveries Deliveries
	// CheckTopic validates a custom topic declared with POST
	// /webhookd/webhook-topics: its shape and that the event stream
	// captures it (serve wires dispatcher.CheckCaptured). Its error text
	// is shown to the client. nil: only a non-empty id is required.
	CheckTopic func(topic string) error
	// Limiter, when set, is the rate limit instead of RateLimit and
	// RateBurst: one shared with the console (NewLimiter).
	Limiter *Limiter
	// AuthLimit limits bad API keys per client address (shared with the
	// console's sign-in); nil: no limit.
	AuthLimit *authlimit.Limiter
	// Console, when set, is served at /console/ (the web console,
	// api/console), inside the access log.
	Console http.Handler
}

const defaultMaxBodyBytes = 64 << 10

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = defaultMaxBodyBytes
	}
	if c.MaxWebhooksPerAccount <= 0 {
		c.MaxWebhooksPerAccount = 10
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return c
}

// Store is what the API needs from the webhook registry; *subscriptions.Store
// implements it.
type Store interface {
	Create(ctx context.Context, nw subscriptions.NewWebhook) (subscriptions.Webhook, error)
	Get(ctx context.Context, account, id string) (subscriptions.Webhook, error)
	List(ctx context.Context, account string) ([]subscriptions.Webhook, error)
	Update(ctx context.Context, account, id string, p subscriptions.Patch) (subscriptions.Webhook, error)
	Delete(ctx context.Context, account, id string) error
	Topics(ctx context.Context, account string) ([]string, error)
	HasTopic(ctx context.Context, account, topic string) (bool, error)
	AddTopics(ctx context.Context, account string, topics ...string) error
	Rotate(ctx context.Context, account, id string, nr subscriptions.NewRotation) (subscriptions.Webhook, error)
	Rotations(ctx context.Context, account, id string) ([]subscriptions.RotationRecord, error)
}

// Deliveries is what the replay, test and delivery-state routes need from
// the dispatcher. Its errors dispatcher.ErrWebhookDisabled,
// ErrReplayWindow and ErrNoSlot become 409, 422 and 429.
type Deliveries interface {
	StartReplay(ctx context.Context, w subscriptions.Webhook, since, until time.Time, topics []string) (subscriptions.Replay, error)
	Replays(ctx context.Context, w subscriptions.Webhook) ([]subscriptions.Replay, error)
	Replay(ctx context.Context, w subscriptions.Webhook, rid string) (subscriptions.Replay, error)
	CancelReplay(ctx context.Context, w subscriptions.Webhook, rid string) (subscriptions.Replay, error)
	TestSend(ctx context.Context, w subscriptions.Webhook) (activity.Attempt, error)
	Backlog(ctx context.Context, w subscriptions.Webhook) (int64, error)
	InFlight(ctx context.Context, w subscriptions.Webhook) (int, error)
}

// Keys resolves an API key to its account; subscriptions.Keyring
// implements it. Lookup must compare keys in constant time.
type Keys interface {
	Lookup(key string) (account string, ok bool)
}

// server holds the dependencies of every handler.
type server struct {
	cfg   Config
	store Store
	keys  Keys
	log   zerolog.Logger
	rate  *limiters
}

// New returns the API handler: the Klaviyo-compatible Webhooks API, the
// delivery-state extension and /healthz, with an access log line per
// request written to log.
func New(cfg Config, store Store, keys Keys, log zerolog.Logger) http.Handler {
	s := &server{cfg: cfg.withDefaults(), store: store, keys: keys, log: log}
	s.rate = newLimiters(s.cfg.RateLimit, s.cfg.RateBurst)
	if cfg.Limiter != nil {
		s.rate = cfg.Limiter.l
	}
	return s.accessLog(s.routes())
}
