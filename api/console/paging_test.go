package console_test

import (
	"context"
	"fmt"
	"html"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/api/console"
	"github.com/webhookd/webhookd/subscriptions"
)

// backlogByName is a Backlog plug-in whose backlog of wh-NN is
// (NN*7) mod 25, all different for 25 webhooks; it counts its reads.
type backlogByName struct {
	mu    sync.Mutex
	reads int
}

func (f *backlogByName) Backlog(_ context.Context, wh subscriptions.Webhook) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	n, err := strconv.Atoi(strings.TrimPrefix(wh.Name, "wh-"))
	return int64(n*7) % 25, err
}

func (f *backlogByName) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

// pagedEnv has 25 webhooks over three accounts, 10 a page, and returns
// the operator's browser.
func pagedEnv(t *testing.T) (*env, *browser, *backlogByName) {
	t.Helper()
	f := &backlogByName{}
	e := newEnv(t, func(c *console.Config, _ *api.Config) {
		c.PageSize = 10
		c.Plugins = console.Plugins{Backlog: f}
	})
	for i := range 25 { // 10 per account at most
		e.webhook([]string{accountA, accountB, "acctC3"}[i/10], fmt.Sprintf("wh-%02d", i), nil)
	}
	return e, e.signedIn(keyOp), f
}

var nextRE = regexp.MustCompile(`href="([^"]+)" rel="next"`)

// Following Next from page 1 shows every webhook exactly once, in name
// order, and the last page says so; the live part polls its own page.
func TestListPagesShowEveryWebhook(t *testing.T) {
	_, b, _ := pagedEnv(t)
	var seen []string
	path := "/console/webhooks"
	for pages := 0; path != ""; pages++ {
		if pages > 3 {
			t.Fatalf("more than 3 pages for 25 webhooks at 10 a page; at %s", path)
		}
		p := b.get(path)
		seen = append(seen, names(p.body)...)
		path = ""
		if m := nextRE.FindStringSubmatch(p.body); m != nil {
			path = "/console/webhooks" + html.UnescapeString(m[1])
		}
	}
	want := make([]string, 25)
	for i := range want {
		want[i] = fmt.Sprintf("wh-%02d", i)
	}
	if !slices.Equal(seen, want) {
		t.Errorf("the pages show %v, want every webhook once in name order %v", seen, want)
	}
	p := b.get("/console/webhooks?page=2")
	if !strings.Contains(p.body, "Webhooks 11–20 of 25") || !strings.Contains(p.body, "Page 2 of 3") {
		t.Errorf("page 2 does not say where it is: %s", p.body)
	}
	if !strings.Contains(p.body, `data-poll="/console/webhooks/rows?page=2&amp;sort=name"`) {
		t.Error("page 2's live part does not poll page 2")
	}
	if !strings.Contains(p.body, `href="?sort=name" rel="first"`) || !strings.Contains(p.body, `href="?page=3&amp;sort=name" rel="last"`) {
		t.Error("page 2 lacks its First and Last links")
	}
	for _, tc := range []struct{ query, first string }{
		{"page=99", "wh-20"}, // past the end: the last page
		{"page=0", "wh-00"},
		{"page=x", "wh-00"},
		{"page=3&health=healthy", "wh-20"}, // all 25 are healthy
	} {
		got := names(b.get("/console/webhooks/rows?" + tc.query).body)
		if len(got) == 0 || got[0] != tc.first {
			t.Errorf("?%s shows %v, want it to start with %s", tc.query, got, tc.first)
		}
	}
}

// A sort the records carry (health) orders the whole list: the webhooks
// in error come first on page 1 though their names sort last.
func TestListSortsAcrossPages(t *testing.T) {
	e, b, _ := pagedEnv(t)
	ctx := context.Background()
	all, err := e.store.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, wh := range all {
		if wh.Name == "wh-23" || wh.Name == "wh-24" {
			if _, err := e.store.RecordFailure(ctx, wh.ID, subscriptions.Failure{Status: 503, Error: "status 503",
				StartedAt: time.Now()}, subscriptions.Backoff{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := names(b.get("/console/webhooks/rows?sort=health").body)
	if len(got) != 10 || got[0] != "wh-23" || got[1] != "wh-24" || got[2] != "wh-00" {
		t.Errorf("page 1 by health = %v, want wh-23, wh-24 (in error) then wh-00…", got)
	}
	if got := names(b.get("/console/webhooks/rows?sort=-name&page=3").body); !slices.Equal(got, []string{"wh-04", "wh-03", "wh-02", "wh-01", "wh-00"}) {
		t.Errorf("page 3 by name descending = %v, want wh-04 … wh-00", got)
	}
}

// Backlog sorts within a page: page 2 holds the same webhooks as in name
// order, ordered by backlog; the page says so. Each page reads only its
// own figures.
func TestListSortsByBacklogWithinPage(t *testing.T) {
	_, b, f := pagedEnv(t)
	if n := f.count(); n != 10 {
		t.Errorf("page 1 read %d backlogs, want its 10", n)
	}
	p := b.get("/console/webhooks/rows?sort=-backlog&page=2")
	if n := f.count(); n != 20 {
		t.Errorf("after page 2, %d backlogs read, want 20", n)
	}
	got := names(p.body)
	byBacklog := func(name string) int {
		n, _ := strconv.Atoi(strings.TrimPrefix(name, "wh-"))
		return n * 7 % 25
	}
	want := []string{"wh-11", "wh-12", "wh-13", "wh-14", "wh-15", "wh-16", "wh-17", "wh-18", "wh-19", "wh-10"}
	slices.SortFunc(want, func(a, b string) int { return byBacklog(b) - byBacklog(a) })
	if !slices.Equal(got, want) {
		t.Errorf("page 2 by backlog descending = %v, want %v", got, want)
	}
	if !strings.Contains(p.body, "this page sorted by backlog, pages in name order") {
		t.Error("the page does not say the backlog sort is within the page")
	}
	// The header link keeps the page (it sorts within it).
	if !strings.Contains(p.body, `href="?page=2&amp;sort=backlog"`) {
		t.Error("the Backlog header link does not keep page 2")
	}
	b.get("/console/webhooks/rows?sort=-backlog&page=2")
	if n := f.count(); n != 20 {
		t.Errorf("page 2 again within the figures' lifetime read %d backlogs in all, want still 20", n)
	}
}
