package flows

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/batcher/flowtmpl"
	"github.com/webhookd/webhookd/subscriptions/flows"
)

// live is one send-webhook action that sends: its flow and itself live.
type live struct {
	flow    flows.Flow // without its other actions' messages mattering
	action  flows.Action
	tmpl    *flowtmpl.Template
	tmplErr error // the template no longer parses (limits changed)
}

// table is one snapshot of the index: account -> trigger -> actions,
// and action id -> action for retries.
type table struct {
	byTrigger map[string]map[string][]*live
	byAction  map[string]*live
	// byMetric: accounts with a trigger that is not a topic (a metric id),
	// whose events must be parsed to be matched.
	byMetric map[string]bool
}

// index holds the live actions, swapped whole on every reload, so the
// per-event lookup takes no lock.
type index struct {
	store Store
	lim   flowtmpl.Limits
	poll  time.Duration
	log   zerolog.Logger
	cur   atomic.Pointer[table]
	rev   int64
	ready chan struct{} // closed after the first load
	bad   bool          // the last load failed (logged once)
}

func newIndex(st Store, lim flowtmpl.Limits, poll time.Duration, log zerolog.Logger) *index {
	ix := &index{store: st, lim: lim, poll: poll, log: log, rev: -1, ready: make(chan struct{})}
	ix.cur.Store(&table{})
	return ix
}

// lookup returns the live actions of account triggered by topic or by
// metric ("" for none); the result must not be changed.
func (ix *index) lookup(account, topic, metric string) []*live {
	t := ix.cur.Load().byTrigger[account]
	if t == nil {
		return nil
	}
	out := t[topic]
	if metric != "" && metric != topic {
		if m := t[metric]; len(m) > 0 {
			out = append(out[:len(out):len(out)], m...)
		}
	}
	return out
}

// mayTrigger reports whether an event of account on topic can trigger
// anything: an action on the topic, or one on a metric id (known only
// once the event is parsed).
func (ix *index) mayTrigger(account, topic string) bool {
	t := ix.cur.Load()
	return len(t.byTrigger[account][topic]) > 0 || t.byMetric[account]
}

func (ix *index) action(id string) *live { return ix.cur.Load().byAction[id] }

// live reports whether any action is live.
func (ix *index) live() bool { return len(ix.cur.Load().byAction) > 0 }

// waitLive waits until live() == want, checking every poll; false when
// ctx ended first.
func (ix *index) waitLive(ctx context.Context, want bool) bool {
	select {
	case <-ix.ready:
	case <-ctx.Done():
		return false
	}
	t := time.NewTicker(ix.poll)
	defer t.Stop()
	for ix.live() != want {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// Run reloads the index whenever the store's revision changes.
func (ix *index) Run(ctx context.Context) error {
	t := time.NewTicker(ix.poll)
	defer t.Stop()
	for {
		ix.refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (ix *index) refresh(ctx context.Context) {
	rev, err := ix.store.Rev(ctx)
	if err == nil && rev == ix.rev {
		return
	}
	var all []flows.Flow
	if err == nil {
		all, err = ix.store.All(ctx)
	}
	if err != nil {
		if !ix.bad && ctx.Err() == nil {
			ix.bad = true
			ix.log.Warn().Err(err).Msg("flow index: cannot load flows; keeping the last index")
		}
		return
	}
	if ix.bad {
		ix.bad = false
		ix.log.Info().Msg("flow index: loading flows again")
	}
	ix.cur.Store(ix.build(all))
	ix.rev = rev
	select {
	case <-ix.ready:
	default:
		close(ix.ready)
	}
}

// build parses the templates of every live action. Templates were
// checked when saved, so a failure here (the limits shrank) is kept with
// the action and skips its events with the reason.
func (ix *index) build(all []flows.Flow) *table {
	t := &table{byTrigger: map[string]map[string][]*live{}, byAction: map[string]*live{}, byMetric: map[string]bool{}}
	for _, f := range all {
		if f.Status != flows.StatusLive {
			continue
		}
		for _, a := range f.Actions {
			if a.Status != flows.StatusLive {
				continue
			}
			l := &live{flow: f, action: a}
			l.tmpl, l.tmplErr = flowtmpl.Parse(a.Message.Body, ix.lim)
			acct := t.byTrigger[f.AccountID]
			if acct == nil {
				acct = map[string][]*live{}
				t.byTrigger[f.AccountID] = acct
			}
			acct[f.TriggerID] = append(acct[f.TriggerID], l)
			if !strings.Contains(f.TriggerID, ".") { // topics are <prefix>.<name>
				t.byMetric[f.AccountID] = true
			}
			t.byAction[a.ID] = l
		}
	}
	return t
}
