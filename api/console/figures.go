package console

import (
	"context"
	"sync"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// The list's costly figures (backlog, delivered in the last hour) are
// kept per webhook for figureTTL, and one refresh of the list reads at
// most figureBudget of them afresh: a page of 100 webhooks polled every
// 2 s costs at most 20 backlog reads and 20 bounded attempt-log reads
// per poll, and each row is at most about 10 s old once every row of
// the page has been read (100 / 20 polls × 2 s). A webhook's own page
// always reads its figures afresh.
const (
	figureTTL    = 10 * time.Second
	figureBudget = 20
)

// figure is one webhook's costly figures as last read.
type figure struct {
	backlog           *int64
	delivered, failed *int64
	at                time.Time
	failing           bool // the last read failed (logged once until it succeeds)
}

// figureCache holds the figures of every webhook listed lately.
type figureCache struct {
	mu    sync.Mutex
	m     map[string]figure
	swept time.Time // the last sweep of old figures
}

func (fc *figureCache) get(id string) (figure, bool) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	f, ok := fc.m[id]
	return f, ok
}

func (fc *figureCache) put(id string, f figure) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.m == nil {
		fc.m = map[string]figure{}
	}
	// Forget webhooks not listed for a while, so deleted ones go; a
	// sweep at most once per figureTTL, however many pages are read.
	if len(fc.m) > 2*defaultPageSize && time.Since(fc.swept) > figureTTL {
		fc.swept = time.Now()
		for k, v := range fc.m {
			if time.Since(v.at) > 10*figureTTL {
				delete(fc.m, k)
			}
		}
	}
	fc.m[id] = f
}

// budget is how many fresh figure reads one request may still make.
type budget struct{ left int }

// fresh is no limit: a webhook's own page.
var fresh *budget

// figures fills rw's backlog and delivered counts: from the cache when
// recent or when b is spent, else read now. A read that fails leaves the
// figure empty ("n/a") and is logged once until a read succeeds.
func (c *Console) figures(ctx context.Context, wh subscriptions.Webhook, rw *row, b *budget) {
	p := c.cfg.Plugins
	if p.Backlog == nil && p.Delivered == nil {
		return
	}
	old, ok := c.figs.get(wh.ID)
	if b != nil { // the list
		switch {
		case ok && (time.Since(old.at) < figureTTL || b.left <= 0):
			rw.Backlog, rw.Delivered, rw.Failed = old.backlog, old.delivered, old.failed
			return
		case b.left <= 0:
			rw.Pending = true
			return
		}
		b.left--
	}
	f := figure{at: time.Now()}
	var firstErr error
	if p.Backlog != nil {
		if n, err := p.Backlog.Backlog(ctx, wh); err == nil {
			f.backlog = &n
		} else {
			firstErr = err
		}
	}
	if p.Delivered != nil {
		if bs, _, err := p.Delivered.Delivered(ctx, wh, f.at.Add(-time.Hour), time.Hour, 1); err == nil && len(bs) == 1 {
			f.delivered, f.failed = &bs[0].Delivered, &bs[0].Failed
		} else if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		f.failing = true
		if !old.failing && ctx.Err() == nil {
			c.cfg.Log.Warn().Err(firstErr).Str("webhook_id", wh.ID).Msg("console: a webhook's backlog or delivered count could not be read")
		}
	}
	c.figs.put(wh.ID, f)
	rw.Backlog, rw.Delivered, rw.Failed = f.backlog, f.delivered, f.failed
}
