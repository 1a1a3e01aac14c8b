package console

import (
	"cmp"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/webhookd/webhookd/subscriptions"
)

// listQuery is the list's sort, filter and page, from the URL.
type listQuery struct {
	Sort   string // a sortKeys key
	Desc   bool
	Health string // "" or a health key
	Page   int    // 1-based; clamped to the last page by listData
}

// sortKeys are the sortable columns. The first ones come with the
// webhook records and order the whole list; pageSortKeys cost a read
// per webhook, so they order the rows within a page only (the pages
// themselves stay in name order).
var (
	sortKeys     = []string{"name", "account", "health", "last_success", "in_flight", "backlog"}
	pageSortKeys = []string{"in_flight", "backlog"}
)

// maxPage bounds the page parameter (a million pages is more webhooks
// than a registry holds).
const maxPage = 1_000_000

func parseListQuery(q url.Values) listQuery {
	lq := listQuery{Sort: "name", Page: 1}
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
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n >= 1 && n <= maxPage {
		lq.Page = n
	}
	return lq
}

// pageSorted reports whether lq's sort orders within a page only.
func (lq listQuery) pageSorted() bool { return slices.Contains(pageSortKeys, lq.Sort) }

// Encode is the query string of lq; page 1 is left out.
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
	if lq.Page > 1 {
		v.Set("page", strconv.Itoa(lq.Page))
	}
	return v.Encode()
}

// SortBy is the query of a column header link: that column ascending,
// or descending when it already sorts ascending. A sort over the whole
// list starts again at page 1; one within a page keeps the page.
func (lq listQuery) SortBy(key string) string {
	n := listQuery{Sort: key, Health: lq.Health, Desc: lq.Sort == key && !lq.Desc, Page: 1}
	if n.pageSorted() {
		n.Page = lq.Page
	}
	return "?" + n.Encode()
}

// Filter is the query of a health filter link, from page 1.
func (lq listQuery) Filter(h string) string {
	n := lq
	n.Health, n.Page = h, 1
	return "?" + n.Encode()
}

// PageURL is the query of page p, sort and filter kept.
func (lq listQuery) PageURL(p int) string {
	n := lq
	n.Page = p
	return "?" + n.Encode()
}

// RowsURL is the fragment console.js polls for this sort, filter and page.
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

// byName orders by name (case folded), then id: the tie-break of every
// sort, which makes the order total and so the pages stable.
func byName(aName, aID, bName, bID string) int {
	if n := strings.Compare(strings.ToLower(aName), strings.ToLower(bName)); n != 0 {
		return n
	}
	return strings.Compare(aID, bID)
}

// sortWebhooks orders the whole list by lq's key when it is one the
// records carry, else (a within-page sort) by name.
func sortWebhooks(whs []subscriptions.Webhook, lq listQuery) {
	desc := lq.Desc && !lq.pageSorted()
	slices.SortStableFunc(whs, func(a, b subscriptions.Webhook) int {
		var n int
		switch lq.Sort {
		case "account":
			n = strings.Compare(a.AccountID, b.AccountID)
		case "health":
			n = healthOf(a).rank - healthOf(b).rank
		case "last_success":
			n = a.State.LastSuccessAt.Compare(b.State.LastSuccessAt)
		}
		if n == 0 {
			n = byName(a.Name, a.ID, b.Name, b.ID)
		}
		if desc {
			return -n
		}
		return n
	})
}

// sortPage orders one page's rows by a within-page key (in flight,
// backlog). A backlog not read yet (or not available) sorts last either
// way.
func sortPage(rows []row, lq listQuery) {
	if !lq.pageSorted() {
		return
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		var n int
		switch lq.Sort {
		case "in_flight":
			n = a.InFlight - b.InFlight
		case "backlog":
			switch {
			case a.Backlog == nil && b.Backlog == nil:
			case a.Backlog == nil:
				return 1
			case b.Backlog == nil:
				return -1
			default:
				n = cmp.Compare(*a.Backlog, *b.Backlog)
			}
		}
		if n == 0 {
			n = byName(a.Name, a.ID, b.Name, b.ID)
		}
		if lq.Desc {
			return -n
		}
		return n
	})
}
