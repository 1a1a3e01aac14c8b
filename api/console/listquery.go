package console

import (
	"net/url"
	"slices"
	"strings"
)

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
