package console

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// maxRows caps the webhooks list: each row costs a Redis round trip for
// its in-flight count, and a page of more rows is not read by anyone.
// The page says when rows were left out; filters narrow it.
const maxRows = 500

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
	Delivered   *int64 // last hour; nil: not available
	Failed      *int64
	LastSuccess time.Time
	LastFailure time.Time
	CreatedAt   time.Time
	ActiveSince time.Time
}

// listQuery is the list's sort and filter, from the URL.
type listQuery struct {
	Sort   string // a sortKeys key
	Desc   bool
	Health string // "" or a health key
}

// sortKeys are the sortable columns.
var sortKeys = []string{"name", "account", "health", "in_flight", "last_success"}

func parseListQuery(q url.Values) listQuery {
	lq := listQuery{Sort: "name"}
	s := q.Get("sort")
	if d, ok := strings.CutPrefix(s, "-"); ok {
		lq.Desc, s = true, d
	}
	if slices.Contains(sortKeys, s) {
		lq.Sort = s
	} else {
		lq.Desc = false
	}
	if h := q.Get("health"); slices.Contains(healthKeys, h) {
		lq.Health = h
	}
	return lq
}

// Encode is the query string of lq.
func (lq listQuery) Encode() string {
	v := url.Values{}
	s := lq.Sort
	if lq.Desc {
		s = "-" + s
	}
	v.Set("sort", s)
	if lq.Health != "" {
		v.Set("health", lq.Health)
	}
	return v.Encode()
}

// SortBy is the query of a column header link: that column ascending,
// or descending when it already sorts ascending.
func (lq listQuery) SortBy(key string) string {
	n := listQuery{Sort: key, Health: lq.Health, Desc: lq.Sort == key && !lq.Desc}
	return "?" + n.Encode()
}

// Filter is the query of a health filter link.
func (lq listQuery) Filter(h string) string {
	n := lq
	n.Health = h
	return "?" + n.Encode()
}

// RowsURL is the fragment console.js polls for this sort and filter.
func (lq listQuery) RowsURL() string { return cookiePath + "webhooks/rows?" + lq.Encode() }

// Arrow marks the sorted column.
func (lq listQuery) Arrow(key string) string {
	switch {
	case lq.Sort != key:
		return ""
	case lq.Desc:
		return " ▼"
	}
	return " ▲"
}

// listData is the webhooks page.
type listData struct {
	Query       listQuery
	Rows        []row
	Total       int // after the filter, before maxRows
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
	rows := make([]row, 0, len(kept))
	for _, wh := range kept {
		rw, err := c.row(ctx, wh)
		if err != nil {
			return listData{}, err
		}
		rows = append(rows, rw)
	}
	sortRows(rows, lq)
	if len(rows) > maxRows {
		rows = rows[:maxRows]
	}
	d.Rows = rows
	return d, nil
}

// sortRows orders rows by lq, ties by name then id.
func sortRows(rows []row, lq listQuery) {
	cmpKey := func(a, b row) int {
		switch lq.Sort {
		case "account":
			return strings.Compare(a.Account, b.Account)
		case "health":
			return a.Health.rank - b.Health.rank
		case "in_flight":
			return a.InFlight - b.InFlight
		case "last_success":
			return a.LastSuccess.Compare(b.LastSuccess)
		}
		return 0
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		n := cmpKey(a, b)
		if n == 0 {
			n = strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
		}
		if n == 0 {
			n = strings.Compare(a.ID, b.ID)
		}
		if lq.Desc {
			return -n
		}
		return n
	})
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

// row gathers what the console shows of wh.
func (c *Console) row(ctx context.Context, wh subscriptions.Webhook) (row, error) {
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
	if b := c.cfg.Plugins.Backlog; b != nil {
		n, err := b.Backlog(ctx, wh)
		if err != nil {
			return row{}, err
		}
		rw.Backlog = &n
	}
	if dc := c.cfg.Plugins.Delivered; dc != nil {
		ok, failed, err := dc.Delivered(ctx, wh.ID, time.Now().Add(-time.Hour))
		if err != nil {
			return row{}, err
		}
		rw.Delivered, rw.Failed = &ok, &failed
	}
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
	Replays []Replay // when Plugins.Replay is set
	Filter  AttemptFilter
	Log     []Attempt // when Plugins.Attempts is set
	Chart   *chart    // when Plugins.Delivered is set
	Next    string
	Notice  string
}

func (c *Console) detailData(ctx context.Context, v *viewer, id string) (detailData, subscriptions.Webhook, error) {
	wh, err := c.webhook(ctx, v, id)
	if err != nil {
		return detailData{}, wh, err
	}
	rw, err := c.row(ctx, wh)
	if err != nil {
		return detailData{}, wh, err
	}
	return detailData{Row: rw, Plugins: c.cfg.Plugins}, wh, nil
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
	c.cfg.Log.Info().Str("webhook_id", wh.ID).Str("account_id", wh.AccountID).Bool("enabled", on).
		Str("by", v.bucket()).Msg("console changed a webhook")
	http.Redirect(w, r, webhookPath(wh.ID)+"?done="+done, http.StatusSeeOther)
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
		return "Replay started."
	case "secret":
		return "Secret rotation started."
	}
	return ""
}
