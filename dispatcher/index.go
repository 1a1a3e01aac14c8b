package dispatcher

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// indexFeed is what the index reads from the registry
// (*subscriptions.Store implements it): a full load, and the change feed
// with a per-webhook read to follow it.
type indexFeed interface {
	All(ctx context.Context) ([]subscriptions.Webhook, error)
	ChangesHead(ctx context.Context) (string, error)
	Changes(ctx context.Context, after string, limit int, block time.Duration) ([]subscriptions.Change, string, error)
	Lookup(ctx context.Context, id string) (subscriptions.Webhook, error)
}

// freeAfterLoad is the registry size from which a full load returns its
// garbage to the OS at once (see reload).
const freeAfterLoad = 1000

// Index limits. A batch of 1,000 changes is one XRANGE and at most 1,000
// HGETALLs; the 2 s block bounds how long Run takes to return once ctx is
// done (a blocked XREAD does not see the cancellation). Retries after a
// Redis error or a refused gate back off from 100 ms to 5 s, so an outage
// costs at most one failed call per 5 s.
const (
	indexBatch    = 1000
	indexBlock    = 2 * time.Second
	indexRetryMin = 100 * time.Millisecond
	indexRetryMax = 5 * time.Second
)

// errIndexGate is the outage reason when the gate refuses a full load.
var errIndexGate = errors.New("the registry in Redis is not accepted (epoch check)")

// index is the dispatcher's in-memory view of the registry: every webhook
// by id, and the enabled ones by (account, topic), kept current by
// following the change feed, so a registry change costs one feed entry
// and one Lookup per replica, whatever the number of webhooks. Lookups
// are safe for concurrent use; Run is the only writer.
//
// The webhooks it returns are shared and immutable: callers must not
// modify them or their Topics. Description is not kept (delivery never
// reads it, and it is unbounded free text). State is what the last load
// of the webhook read (a change to it, or a full reload); the delivery
// outcomes the dispatcher records itself do not move it.
type index struct {
	feed           indexFeed
	defaultAccount string
	log            zerolog.Logger

	// allow, when set, is asked before a full load replaces the index;
	// false (or an error) keeps the old index, and the load is retried
	// with backoff. It guards against acting on an emptied or replaced
	// registry (the epoch check). Set before Run.
	allow func(ctx context.Context) (bool, error)
	// onChange, when set, is called after each applied change, from
	// Run's goroutine (never concurrently with itself, never with the
	// index locked; lookups already return cur). old is what the index
	// held before, nil for a webhook it did not hold; cur is what it
	// holds now, nil for one that is gone (deleted, or absent from a
	// full reload). A disabled webhook stays held (Get finds it,
	// Targets does not), so a disable is (enabled, disabled), not a
	// removal. It is called only when the webhook appears, disappears,
	// or a field other than State differs (Enabled, ActiveSince,
	// EndpointURL, Secret, Topics, Name, timestamps), so a repeated or
	// stale feed entry, or a move of State alone, is silent (State is
	// still refreshed). A full reload reports every webhook that
	// differs, in no particular order; the first load reports nothing
	// (wait for Loaded, then read). It must not block: the feed waits
	// for it. Set before Run.
	onChange func(old, cur *subscriptions.Webhook)

	// block, retryMin and retryMax are indexBlock, indexRetryMin and
	// indexRetryMax; tests shrink them.
	block, retryMin, retryMax time.Duration

	loaded   chan struct{} // closed once the first full load is applied and followed
	isLoaded bool          // Run's: the first full load is applied (loaded is closed after it stores the cursor)

	mu   sync.RWMutex
	data *indexData

	pos      atomic.Pointer[string] // Run's feed cursor, for syncAfter
	syncSem  chan struct{}          // one syncAfter at a time; waiters give up with their ctx
	syncedAt time.Time              // start of the last completed syncAfter read
}

// newIndex returns an empty index reading f. Events on a bare topic
// belong to defaultAccount (Targets with account "").
func newIndex(f indexFeed, defaultAccount string, log zerolog.Logger) *index {
	return &index{
		feed: f, defaultAccount: defaultAccount, log: log,
		block: indexBlock, retryMin: indexRetryMin, retryMax: indexRetryMax,
		loaded: make(chan struct{}), data: newIndexData(0), syncSem: make(chan struct{}, 1),
	}
}

// Targets returns the enabled webhooks of account subscribed to topic,
// ordered by id; "" is the default account. The slice is shared and
// never modified (a change replaces it), so it costs no allocation.
func (x *index) Targets(account, topic string) []*subscriptions.Webhook {
	if account == "" {
		account = x.defaultAccount
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.data.targets[targetKey{account, topic}]
}

// Get returns the webhook with that id, enabled or not.
func (x *index) Get(id string) (*subscriptions.Webhook, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	w, ok := x.data.byID[id]
	return w, ok
}

// Len returns the number of webhooks held, enabled or not.
func (x *index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.data.byID)
}

// Loaded returns a channel closed once the first full load is applied
// and the index follows the change feed from it.
func (x *index) Loaded() <-chan struct{} { return x.loaded }

// Ready reports whether the first full load is applied.
func (x *index) Ready() bool {
	select {
	case <-x.loaded:
		return true
	default:
		return false
	}
}

// Run loads the whole registry, then follows the change feed until ctx
// is done, and returns nil. Redis errors are logged once per outage while
// the last index keeps serving; a cursor the feed no longer covers
// (ErrChangesTrimmed: trimmed, or the registry was replaced) means a full
// reload, which the gate must allow first.
func (x *index) Run(ctx context.Context) error {
	var (
		cursor string // "" = a full load is due
		out    indexOutage
	)
	for ctx.Err() == nil {
		var err error
		if cursor == "" {
			cursor, err = x.reload(ctx)
		} else {
			cursor, err = x.follow(ctx, cursor)
			if errors.Is(err, subscriptions.ErrChangesTrimmed) {
				x.log.Warn().Msg("the registry change feed no longer covers this replica's position; reloading every webhook")
				cursor, err = "", nil
			}
		}
		if cursor != "" {
			c := cursor // a copy: Run goes on writing cursor
			x.pos.Store(&c)
			// Loaded only once the index follows the feed: a partition
			// started on it syncs at once (a sync before would fail, and
			// its first batch be handed back).
			if x.isLoaded && !x.Ready() {
				close(x.loaded)
			}
		}
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			if !x.wait(ctx, out.fail(x, err)) {
				break
			}
			continue
		}
		out.ok(x.log)
	}
	return nil
}

// reload replaces the index with a full load, if the gate allows it,
// and returns the feed cursor to follow from. The head is read before
// All, so a change landing during the load is read again from the feed.
// The new generation is built beside the old one, which readers use
// until the swap, so a reload briefly needs twice the index's memory.
func (x *index) reload(ctx context.Context) (string, error) {
	head, err := x.feed.ChangesHead(ctx)
	if err != nil {
		return "", err
	}
	ws, err := x.feed.All(ctx)
	if err != nil {
		return "", err
	}
	if x.allow != nil {
		ok, err := x.allow(ctx)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", errIndexGate
		}
	}
	d := newIndexData(len(ws))
	for _, w := range ws {
		d.put(w)
	}
	x.mu.Lock()
	old := x.data
	x.data = d
	x.mu.Unlock()
	x.log.Info().Int("webhooks", len(ws)).Msg("webhook index loaded")
	if len(ws) >= freeAfterLoad {
		// A full load decodes every record through go-redis's reply maps:
		// several times the index's own size, garbage once the index is
		// built. Hand it back to the OS now rather than keep it as RSS
		// until the runtime's scavenger gets to it (a rare, one-off cost:
		// start-up and a trimmed feed).
		debug.FreeOSMemory()
	}
	if !x.isLoaded {
		x.isLoaded = true // Run closes loaded once it has the cursor
	} else if x.onChange != nil {
		x.reportReload(old, d)
	}
	return head, nil
}

// reportReload calls onChange for every difference between two loads.
func (x *index) reportReload(old, cur *indexData) {
	for id, w := range cur.byID {
		if o := old.byID[id]; o == nil || !sameWebhook(o, w) {
			x.onChange(o, w)
		}
	}
	for id, o := range old.byID {
		if _, ok := cur.byID[id]; !ok {
			x.onChange(o, nil)
		}
	}
}

// follow applies one batch of the change feed after cursor and returns
// the next cursor. Entries are hints: each named webhook is read once per
// batch, as it is now. On a Lookup error the cursor stays where it was,
// and the batch is applied again later (harmless: applying is idempotent).
func (x *index) follow(ctx context.Context, cursor string) (string, error) {
	cs, next, err := x.feed.Changes(ctx, cursor, indexBatch, x.block)
	if err != nil || len(cs) == 0 {
		return cursor, err
	}
	seen := make(map[string]bool, len(cs))
	for _, c := range cs {
		if seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		w, err := x.feed.Lookup(ctx, c.ID)
		switch {
		case errors.Is(err, subscriptions.ErrNotFound):
			x.apply(c.ID, nil)
		case err != nil:
			return cursor, err
		default:
			x.apply(c.ID, &w)
		}
	}
	return next, nil
}

// apply stores w (nil: removes id) and reports the change.
func (x *index) apply(id string, w *subscriptions.Webhook) {
	x.mu.Lock()
	old := x.data.remove(id)
	if w != nil {
		w = x.data.put(*w)
	}
	x.mu.Unlock()
	if x.onChange == nil || old == nil && w == nil || old != nil && w != nil && sameWebhook(old, w) {
		return
	}
	x.onChange(old, w)
}

// wait sleeps d or until ctx is done; it reports whether d elapsed.
func (x *index) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
