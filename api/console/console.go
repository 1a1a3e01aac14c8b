// Package console serves webhookd's web console at /console/ on the API
// listener: server-rendered html/template pages for operators and for an
// account's developers, with one small script of our own (console.js)
// and one stylesheet, both embedded. There is no node build step and no
// inline script or style, so a strict Content-Security-Policy holds.
//
// Sign-in takes an account's API key (that account only) or the operator
// key (every account). Keys are checked by the API's constant-time
// Keyring, and every signed-in request spends a token from the same
// per-account rate limit as the API; wrong keys are limited per client
// address (api/authlimit, shared with the API). Sessions live in Redis (see
// sessions.go), so every replica accepts them and logout revokes them.
//
// Sections that depend on features built elsewhere (attempt log, test
// send, replay, secret rotation, backlog, delivered counts, flows) plug in
// through the small interfaces in plugins.go; a nil one makes its section
// say "not available in this build".
package console

import (
	"context"
	"embed"
	"io/fs"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// Store is what the console needs from the webhook registry;
// *subscriptions.Store implements it. Update is the call PATCH
// /api/webhooks/{id} makes, so enable and disable take the same path.
type Store interface {
	Get(ctx context.Context, account, id string) (subscriptions.Webhook, error)
	Lookup(ctx context.Context, id string) (subscriptions.Webhook, error)
	List(ctx context.Context, account string) ([]subscriptions.Webhook, error)
	All(ctx context.Context) ([]subscriptions.Webhook, error)
	Update(ctx context.Context, account, id string, p subscriptions.Patch) (subscriptions.Webhook, error)
	Topics(ctx context.Context, account string) ([]string, error)
	SlotsInUse(ctx context.Context, id string) (int, error)
}

// Keys resolves a key to its account in constant time;
// *subscriptions.Keyring implements it.
type Keys interface {
	Lookup(key string) (account string, ok bool)
}

// Limiter is the API's per-account rate limit (api.Limiter): Take spends
// one token of account's bucket and returns 0, or how long until one is
// available. A nil Limiter is no limit.
type Limiter interface {
	Take(account string, now time.Time) (retryAfter time.Duration)
}

// AuthLimit is the failed-authentication limit per client address
// (*authlimit.Limiter, shared with the API): Wait says how long the
// request's address must wait before a key of it is checked, Failed
// records a bad key.
type AuthLimit interface {
	Wait(r *http.Request, now time.Time) time.Duration
	Failed(r *http.Request, now time.Time)
}

// Config configures the console. Store, Keys and Sessions are required;
// everything else may be nil or zero.
type Config struct {
	Store    Store
	Keys     Keys     // account API keys (the API's)
	Operator Keys     // the operator key (--admin-key), nil: no operator sign-in
	Sessions Sessions // where sessions live (NewRedisSessions)
	Limiter  Limiter  // the API's rate limit, shared
	// AuthLimit limits bad keys at sign-in per address (the API's,
	// shared); nil: no limit.
	AuthLimit AuthLimit
	// Accounts are the accounts the operator sees even before they have
	// webhooks (those of the configured API keys).
	Accounts []string
	// DeadLetters reads the dead-letter stream; nil: the page says how to
	// get one.
	DeadLetters DeadLetterReader
	Plugins     Plugins
	// PageSize is how many webhooks a page of the list shows (100).
	PageSize int
	// Poll is how often the live parts of a page refresh (2s).
	Poll time.Duration
	// SessionTTL is a session's lifetime from sign-in (12h); it does not
	// slide, so a console left open signs in again twice a day.
	SessionTTL time.Duration
	Version    string
	Log        zerolog.Logger
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console is the console's HTTP handler.
type Console struct {
	cfg   Config
	pages *pages
	mux   *http.ServeMux
	figs  figureCache
}

// New returns the console; mount it at /console/.
func New(cfg Config) (*Console, error) {
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = defaultPageSize
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, pages: p}
	c.mux = c.routes()
	return c, nil
}

// ServeHTTP serves every console path with the security headers set.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	c.mux.ServeHTTP(w, r)
}

// routes lists every console route.
func (c *Console) routes() *http.ServeMux {
	static, _ := fs.Sub(staticFS, "static") // cannot fail: the directory is embedded
	files := http.StripPrefix("/console/static/", http.FileServer(http.FS(static)))

	mux := http.NewServeMux()
	mux.Handle("/console", http.RedirectHandler(cookiePath, http.StatusMovedPermanently))
	mux.HandleFunc("GET /console/{$}", c.signInPage)
	mux.HandleFunc("POST /console/login", c.login)
	mux.Handle("POST /console/logout", c.action(c.logout))
	mux.Handle("GET /console/static/", cacheStatic(files))

	mux.Handle("GET /console/webhooks", c.page(c.webhooksPage))
	mux.Handle("GET /console/webhooks/rows", c.fragment(c.webhookRows))
	mux.Handle("GET /console/webhooks/{id}", c.page(c.webhookPage))
	mux.Handle("GET /console/webhooks/{id}/state", c.fragment(c.webhookState))
	mux.Handle("POST /console/webhooks/{id}/enabled", c.action(c.setEnabled))
	mux.Handle("POST /console/webhooks/{id}/test", c.action(c.testSend))
	mux.Handle("POST /console/webhooks/{id}/replays", c.action(c.replay))
	mux.Handle("POST /console/webhooks/{id}/replays/{rid}/cancel", c.action(c.cancelReplay))
	mux.Handle("POST /console/webhooks/{id}/secret", c.action(c.rotateSecret))
	mux.Handle("GET /console/topics", c.page(c.topicsPage))
	mux.Handle("GET /console/dead-letters", c.page(c.deadLettersPage))
	mux.Handle("GET /console/flows", c.page(c.flowsPage))
	mux.Handle("GET /console/flows/rows", c.fragment(c.flowRows))
	mux.Handle("GET /console/flows/{id}", c.page(c.flowPage))
	mux.Handle("GET /console/flows/{id}/state", c.fragment(c.flowState))
	mux.Handle("POST /console/flows/{id}/preview", c.actionSized(previewForm, c.preview))

	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.errorPage(w, r, nil, http.StatusNotFound, "There is no such page.")
	})
	return mux
}

// cacheStatic lets browsers keep the script and stylesheet for a few
// minutes: they change only with the binary.
func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		h.ServeHTTP(w, r)
	})
}

// setSecurityHeaders is the policy every console response carries: no
// inline script or style, nothing from other origins, no framing, no
// sniffing, no referrer leaving the console, and no caching of pages
// that hold account data (static files override Cache-Control).
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on form posts, and the origin check needs it.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	h.Set("Cache-Control", "no-store")
}

// ContentSecurityPolicy is the console's policy: scripts, styles, images
// and fetches from the console's own origin only, no plugins, no <base>,
// forms post only to the console, and no page may frame it.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
