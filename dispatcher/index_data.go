package dispatcher

import (
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// indexOutage spaces retries and logs an outage once when it starts and
// once when it ends, not once per failed attempt.
type indexOutage struct {
	since time.Time // zero = no outage
	tries int
	next  time.Duration
}

// fail records a failed attempt and returns how long to wait.
func (o *indexOutage) fail(x *index, err error) time.Duration {
	if o.since.IsZero() {
		o.since, o.next = time.Now(), x.retryMin
		x.log.Error().Err(err).Msg("webhook index cannot use the registry; serving the webhooks loaded before and retrying")
	}
	o.tries++
	d := o.next
	o.next = min(2*o.next, x.retryMax)
	return d
}

// ok ends an outage, if there was one.
func (o *indexOutage) ok(log zerolog.Logger) {
	if o.since.IsZero() {
		return
	}
	log.Info().Dur("duration_ms", time.Since(o.since)).Int("attempt", o.tries).Msg("webhook index reads the registry again")
	*o = indexOutage{}
}

// targetKey is what Targets looks up.
type targetKey struct{ account, topic string }

// interned is one canonical string and how many stored fields use it.
type interned struct {
	s string
	n int
}

// indexData is one generation of the index. Account ids, topics and the
// short state strings repeat across webhooks, so they are interned with
// reference counts: one copy each, freed when the last user goes.
type indexData struct {
	byID    map[string]*subscriptions.Webhook
	targets map[targetKey][]*subscriptions.Webhook // enabled webhooks only
	strs    map[string]interned
	// retrying are the enabled webhooks whose retrying flag is set (the
	// retry keeper reads it twice a second: not a scan of byID).
	retrying map[string]*subscriptions.Webhook
}

func newIndexData(n int) *indexData {
	return &indexData{
		byID:    make(map[string]*subscriptions.Webhook, n),
		targets: make(map[targetKey][]*subscriptions.Webhook, n),
		strs:    make(map[string]interned),

		retrying: make(map[string]*subscriptions.Webhook),
	}
}

// put stores a copy of w, which must not be held already, and returns
// it. Each webhook is its own allocation, so that one kept by a caller
// does not pin a whole load's array.
func (d *indexData) put(v subscriptions.Webhook) *subscriptions.Webhook {
	w := &v
	w.Description = nil
	w.AccountID = d.intern(w.AccountID)
	topics := make([]string, len(w.Topics)) // exact size: the decoder's slice has spare room
	for i, t := range w.Topics {
		topics[i] = d.intern(t)
	}
	w.Topics = topics
	st := &w.State
	st.LastError, st.DisabledReason = d.intern(st.LastError), d.intern(st.DisabledReason)
	st.UndeliverableReason = d.intern(st.UndeliverableReason)
	d.byID[w.ID] = w
	if !w.Enabled {
		return w
	}
	if w.State.Retrying {
		d.retrying[w.ID] = w
	}
	for _, t := range w.Topics {
		k := targetKey{w.AccountID, t}
		old := d.targets[k]
		i, _ := slices.BinarySearchFunc(old, w.ID, func(a *subscriptions.Webhook, id string) int { return strings.Compare(a.ID, id) })
		d.targets[k] = slices.Insert(slices.Clip(old), i, w) // a new array: readers hold the old one
	}
	return w
}

// remove drops the webhook with that id and returns it (nil if absent).
func (d *indexData) remove(id string) *subscriptions.Webhook {
	w := d.byID[id]
	if w == nil {
		return nil
	}
	delete(d.byID, id)
	delete(d.retrying, id)
	if w.Enabled {
		for _, t := range w.Topics {
			k := targetKey{w.AccountID, t}
			if s := d.targets[k]; len(s) <= 1 {
				delete(d.targets, k)
			} else {
				d.targets[k] = slices.DeleteFunc(slices.Clone(s), func(a *subscriptions.Webhook) bool { return a == w })
			}
		}
	}
	d.release(w.AccountID)
	for _, t := range w.Topics {
		d.release(t)
	}
	d.release(w.State.LastError)
	d.release(w.State.DisabledReason)
	d.release(w.State.UndeliverableReason)
	return w
}

// intern returns the canonical copy of s and counts one more user.
func (d *indexData) intern(s string) string {
	if s == "" {
		return ""
	}
	e, ok := d.strs[s]
	if !ok {
		e.s = s
	}
	e.n++
	d.strs[s] = e
	return e.s
}

// release counts one user of s less.
func (d *indexData) release(s string) {
	if s == "" {
		return
	}
	if e := d.strs[s]; e.n <= 1 {
		delete(d.strs, s)
	} else {
		e.n--
		d.strs[s] = e
	}
}

// sameWebhook reports whether a and b agree on every field but State
// (see index.onChange).
func sameWebhook(a, b *subscriptions.Webhook) bool {
	return a.ID == b.ID && a.AccountID == b.AccountID && a.Name == b.Name &&
		a.EndpointURL == b.EndpointURL && a.Secret == b.Secret && a.Enabled == b.Enabled &&
		slices.Equal(a.Topics, b.Topics) && a.CreatedAt.Equal(b.CreatedAt) &&
		a.UpdatedAt.Equal(b.UpdatedAt) && a.ActiveSince.Equal(b.ActiveSince) &&
		sameRotation(a.Rotation, b.Rotation)
}

// sameRotation compares two staged secret rotations (nil: none).
func sameRotation(a, b *subscriptions.Rotation) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
