package console

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// defaultPageSize is how many webhooks a list page shows: each row costs
// a Redis round trip for its in-flight count (and its budgeted figures,
// figures.go), so a page stays small however many webhooks there are.
const defaultPageSize = 100

// row is one webhook as the list and its page show it.
type row struct {
	ID          string
	Account     string
	Name        string
	Description string
	Host        string
	Topics      []string
	Enabled     bool
	Health      health
	InFlight    int
	Backlog     *int64 // nil: not available
	Delivered   *int64 // events, last hour; nil: not available
	Failed      *int64 // failed attempts, last hour
	Pending     bool   // the list has not read Backlog and Delivered yet (figures.go)
	LastSuccess time.Time
	LastFailure time.Time
	CreatedAt   time.Time
	ActiveSince time.Time
}

// listData is the webhooks page.
type listData struct {
	Query       listQuery
	Rows        []row
	Total       int  // after the filter, on every page
	First, Last int  // the 1-based positions of the page's first and last rows
	Prev, Next  int  // the previous and next page; 0: none
	Pages       int  // how many pages Total makes (at least 1)
	PageSorted  bool // the sort orders within the page only
	Counts      map[string]int
	HealthKeys  []string
	Updated     time.Time
	AllAccounts bool
	Plugins     Plugins
}

func (c *Console) webhooksPage(w http.ResponseWriter, r *http.Request, v *viewer) error {
	d, err := c.listData(r.Context(), v, parseListQuery(r.URL.Query()))
	if err != nil {
		return err
	}
	c.renderPage(w, r, v, "webhooks", "Webhooks", "webhooks", d)
	return nil
}

// webhookRows is the fragment console.js polls to keep the list live.
func (c *Console) webhookRows(w http.ResponseWriter, r *http.Request, v *viewer) error {
	d, err := c.listData(r.Context(), v, parseListQuery(r.URL.Query()))
	if err != nil {
		return err
	}
	c.renderFragment(w, r, v, "webhooks", "rows", d)
	return nil
}

func (c *Console) listData(ctx context.Context, v *viewer, lq listQuery) (listData, error) {
	whs, err := c.visible(ctx, v)
	if err != nil {
		return listData{}, err
	}
	d := listData{Query: lq, Counts: map[string]int{}, HealthKeys: healthKeys, Updated: time.Now(),
		AllAccounts: v.Operator, Plugins: c.cfg.Plugins}
	var kept []subscriptions.Webhook
	for _, wh := range whs {
		h := healthOf(wh).Key
		d.Counts[h]++
		if lq.Health == "" || lq.Health == h {
			kept = append(kept, wh)
		}
	}
	d.Total = len(kept)
	sortWebhooks(kept, lq)
	size := c.cfg.PageSize
	d.Pages = max((len(kept)+size-1)/size, 1)
	d.Query.Page = min(lq.Page, d.Pages) // a page past the end shows the last
	from := (d.Query.Page - 1) * size
	kept = kept[from:min(from+size, len(kept))]
	d.First, d.Last, d.PageSorted = from+1, from+len(kept), lq.pageSorted()
	if d.Query.Page > 1 {
		d.Prev = d.Query.Page - 1
	}
	if d.Query.Page < d.Pages {
		d.Next = d.Query.Page + 1
	}
	rows := make([]row, 0, len(kept))
	b := &budget{left: figureBudget}
	for _, wh := range kept {
		rw, err := c.row(ctx, wh, b)
		if err != nil {
			return listData{}, err
		}
		rows = append(rows, rw)
	}
	sortPage(rows, d.Query)
	d.Rows = rows
	return d, nil
}

// visible is every webhook the viewer may see.
func (c *Console) visible(ctx context.Context, v *viewer) ([]subscriptions.Webhook, error) {
	if v.Operator {
		return c.cfg.Store.All(ctx)
	}
	return c.cfg.Store.List(ctx, v.Account)
}

// webhook returns webhook id if the viewer may see it, else
// subscriptions.ErrNotFound (another account's webhook is not found,
// as in the API).
func (c *Console) webhook(ctx context.Context, v *viewer, id string) (subscriptions.Webhook, error) {
	if v.Operator {
		return c.cfg.Store.Lookup(ctx, id)
	}
	return c.cfg.Store.Get(ctx, v.Account, id)
}

// row gathers what the console shows of wh, the costly figures within
// budget b (nil: read them now).
func (c *Console) row(ctx context.Context, wh subscriptions.Webhook, b *budget) (row, error) {
	rw := row{ID: wh.ID, Account: wh.AccountID, Name: wh.Name, Host: endpointHost(wh.EndpointURL),
		Topics: wh.Topics, Enabled: wh.Enabled, Health: healthOf(wh),
		LastSuccess: wh.State.LastSuccessAt, LastFailure: wh.State.LastFailureAt,
		CreatedAt: wh.CreatedAt, ActiveSince: wh.ActiveSince}
	if wh.Description != nil {
		rw.Description = *wh.Description
	}
	n, err := c.cfg.Store.SlotsInUse(ctx, wh.ID)
	if err != nil {
		return row{}, err
	}
	rw.InFlight = n
	c.figures(ctx, wh, &rw, b)
	return rw, nil
}

// endpointHost is the host (and port) of an endpoint: enough to
// recognise it, without a path or query that may carry a token.
func endpointHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// detailData is one webhook's page.
type detailData struct {
	Row     row
	Plugins Plugins
	Test    *Attempt // the result of a test send just made
	// TestError is why a test send just asked for was not made.
	TestError string
	Replays   []Replay // when Plugins.Replay is set; in the live part
	// Rotation is the staged secret rotation; nil when none.
	Rotation *rotation
	Filter   AttemptFilter
	Log      []Attempt // when Plugins.Attempts is set
	Chart    *chart    // when Plugins.Delivered is set
	Next     string
	NextURL  string // the next page's query, filter kept
	Notice   string
}

func (c *Console) detailData(ctx context.Context, v *viewer, id string) (detailData, subscriptions.Webhook, error) {
	wh, err := c.webhook(ctx, v, id)
	if err != nil {
		return detailData{}, wh, err
	}
	rw, err := c.row(ctx, wh, fresh)
	if err != nil {
		return detailData{}, wh, err
	}
	d := detailData{Row: rw, Plugins: c.cfg.Plugins, Rotation: rotationOf(wh, time.Now())}
	if p := c.cfg.Plugins.Replay; p != nil {
		if d.Replays, err = p.Replays(ctx, wh); err != nil {
			return detailData{}, wh, err
		}
	}
	return d, wh, nil
}

func (c *Console) webhookPage(w http.ResponseWriter, r *http.Request, v *viewer) error {
	d, wh, err := c.detailData(r.Context(), v, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := c.pluginData(r, wh, &d); err != nil {
		return err
	}
	d.Notice = noticeText(r.URL.Query().Get("done"))
	c.renderPage(w, r, v, "webhook", d.Row.Name, "webhooks", d)
	return nil
}

// webhookState is the fragment console.js polls on a webhook's page.
func (c *Console) webhookState(w http.ResponseWriter, r *http.Request, v *viewer) error {
	d, _, err := c.detailData(r.Context(), v, r.PathValue("id"))
	if err != nil {
		return err
	}
	c.renderFragment(w, r, v, "webhook", "state", d)
	return nil
}

// setEnabled is the enable/disable form: the same store call as PATCH
// /api/webhooks/{id} with attributes.enabled, in the webhook's own
// account (the operator acts in any).
func (c *Console) setEnabled(w http.ResponseWriter, r *http.Request, v *viewer) error {
	wh, err := c.webhook(r.Context(), v, r.PathValue("id"))
	if err != nil {
		return err
	}
	var on bool
	switch r.PostForm.Get("enabled") {
	case "true":
		on = true
	case "false":
	default:
		return &consoleError{status: http.StatusBadRequest, msg: "enabled must be true or false."}
	}
	if _, err := c.cfg.Store.Update(r.Context(), wh.AccountID, wh.ID, subscriptions.Patch{Enabled: &on}); err != nil {
		return err
	}
	done := "disabled"
	if on {
		done = "enabled"
	}
	c.acted(w, r, v, wh, done, "console changed a webhook", func(e *zerolog.Event) { e.Bool("enabled", on) })
	return nil
}

func webhookPath(id string) string { return cookiePath + "webhooks/" + url.PathEscape(id) }

// noticeText is the message shown after an action redirected back.
func noticeText(done string) string {
	switch done {
	case "enabled":
		return "Enabled: only events published from now on are delivered."
	case "disabled":
		return "Disabled: its backlog is dropped and nothing is delivered until it is enabled again."
	case "replay":
		return "Replay started; its progress shows below."
	case "cancelled":
		return "Replay cancelled: it stops before its next batch."
	case "secret":
		return "Secret rotation started: both secrets sign until the current one retires. The new secret is not shown again."
	}
	return ""
}
