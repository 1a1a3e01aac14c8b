package dispatcher

import (
	"context"
	"errors"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// syncAfter applies every registry change made before t, if a read of
// the change feed that started after t has not done so already. A
// partition runner calls it with the time it received a batch: a webhook
// created (its write acknowledged) before an event was published is then
// in the index before the event is routed, whatever Run's blocking read
// is doing. It costs one feed read per call at most, shared by every
// caller that received its batch before that read started. It applies
// entries without moving Run's cursor; Run applies them again, which is
// harmless (applying reads the webhook as it is now).
func (x *index) syncAfter(ctx context.Context, t time.Time) error {
	select {
	case x.syncSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-x.syncSem }()
	if x.syncedAt.After(t) {
		return nil
	}
	cursor := x.pos.Load()
	if cursor == nil {
		return errIndexNotFollowing
	}
	start := time.Now()
	for at := *cursor; ; {
		cs, next, err := x.feed.Changes(ctx, at, indexBatch, 0)
		if errors.Is(err, subscriptions.ErrChangesTrimmed) {
			return err // Run reloads; until then the index is not known fresh
		}
		if err != nil {
			return err
		}
		for _, c := range cs {
			w, err := x.feed.Lookup(ctx, c.ID)
			switch {
			case errors.Is(err, subscriptions.ErrNotFound):
				x.apply(c.ID, nil)
			case err != nil:
				return err
			default:
				x.apply(c.ID, &w)
			}
		}
		if len(cs) < indexBatch {
			break
		}
		at = next
	}
	x.syncedAt = start
	return nil
}

// errIndexNotFollowing: the index has not started following the feed.
var errIndexNotFollowing = errors.New("dispatcher: the webhook index is not following the change feed yet")

// retrying returns the enabled webhooks whose retrying flag is set.
func (x *index) retrying() []*subscriptions.Webhook {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]*subscriptions.Webhook, 0, len(x.data.retrying))
	for _, w := range x.data.retrying {
		out = append(out, w)
	}
	return out
}

// countEnabled counts the enabled webhooks whose account mine accepts.
func (x *index) countEnabled(mine func(account string) bool) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := 0
	for _, w := range x.data.byID {
		if w.Enabled && mine(w.AccountID) {
			n++
		}
	}
	return n
}
