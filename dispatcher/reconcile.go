package dispatcher

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// fullResync bounds how long a replica trusts its view without re-reading
// the registry and re-checking every consumer on the server (heals a lost
// consumer after a NATS restart without its store, or a missed change).
const fullResync = 30 * time.Second

// reconciler keeps the stream's consumers and this replica's runners in
// line with the registry.
type reconciler struct {
	cfg     Config
	js      jetstream.JetStream
	streams *streams
	reg     registry
	fleet   *fleet
	log     zerolog.Logger
	stats   *Stats

	mu       sync.Mutex
	applied  map[string]string // webhook id -> consumer signature applied
	problem  map[string]string // webhook id -> why it cannot be delivered, as last recorded
	problems int               // non-empty entries of problem

	// full asks for a full pass at the next tick: a runner found its
	// consumer (or the whole stream) missing.
	full atomic.Bool
}

// requestFullPass makes the next tick re-check every consumer.
func (r *reconciler) requestFullPass() { r.full.Store(true) }

// Run polls the registry revision every ReconcileInterval and re-applies
// the whole registry when it changed, and fully every fullResync. It
// returns nil once ctx is done.
func (r *reconciler) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.ReconcileInterval)
	defer t.Stop()
	lastRev := int64(-1)
	var lastFull time.Time
	failing, adopt := false, r.cfg.AdoptRegistry
	for {
		if r.full.Swap(false) {
			lastFull = time.Time{}
		}
		err := r.tick(ctx, &lastRev, &lastFull, adopt)
		if err == nil {
			adopt = false // adopting is a start-up decision, never a standing one
		}
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			r.log.Error().Err(err).Msg("reading webhook registry; delivery goes on with the last known registry")
			failing = true
		case err == nil && failing:
			r.log.Info().Msg("webhook registry readable again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// tick does one reconciliation step.
func (r *reconciler) tick(ctx context.Context, lastRev *int64, lastFull *time.Time, adopt bool) error {
	rev, err := r.reg.Revision(ctx)
	if err != nil {
		return err
	}
	full := time.Since(*lastFull) > fullResync
	// A refused registry is re-checked every tick: a restored backup
	// brings back the old revision, so the revision alone would not say.
	if rev == *lastRev && !full && r.stats.RegistryMismatch.Load() == 0 {
		return nil
	}
	st, have, recorded, err := r.checkEpoch(ctx, adopt)
	if err != nil {
		return err
	}
	r.noteEpoch(st, have, recorded)
	if st != epochOK {
		return nil
	}
	ws, err := r.reg.All(ctx)
	if err != nil {
		return err
	}
	r.apply(ctx, ws, full)
	*lastRev = rev
	if full {
		*lastFull = time.Now()
	}
	return nil
}

// apply starts, updates and stops runners and consumers to match ws.
// full also re-checks consumers whose configuration looked unchanged and
// deletes consumers of webhooks that no longer exist.
func (r *reconciler) apply(ctx context.Context, ws []subscriptions.Webhook, full bool) {
	want := make(map[string]subscriptions.Webhook, len(ws))
	bad := make(map[string]string)
	for _, w := range ws {
		if !w.Enabled || len(w.Topics) == 0 {
			continue // not meant to be delivered: not undeliverable either
		}
		if !validAccount(w.AccountID) {
			bad[w.ID] = "account id " + w.AccountID + " cannot be a NATS subject token"
			continue
		}
		want[w.ID] = w
	}
	for _, id := range r.fleet.stopExcept(want) {
		r.deleteConsumer(ctx, id)
	}
	r.forgetProblems(want, bad)
	for id, reason := range bad {
		r.setProblem(ctx, id, reason)
	}
	for id, w := range want {
		sig := r.signature(w)
		r.mu.Lock()
		applied := r.applied[id] == sig
		r.mu.Unlock()
		if !applied || full {
			if err := r.ensureConsumer(ctx, w); err != nil {
				if ctx.Err() == nil && !isConnErr(err) {
					r.setProblem(ctx, id, "consumer: "+err.Error())
				}
				continue
			}
			r.mu.Lock()
			r.applied[id] = sig
			r.mu.Unlock()
		}
		r.setProblem(ctx, id, "")
		if ctx.Err() == nil {
			r.fleet.run(ctx, w)
		}
	}
	if full {
		r.deleteOrphans(ctx, want)
	}
}

// setProblem records why webhook id cannot be delivered ("" once it
// can): in its delivery state, the undeliverable gauge and one log line
// per change, never one per attempt.
func (r *reconciler) setProblem(ctx context.Context, id, reason string) {
	r.mu.Lock()
	prev, known := r.problem[id]
	if known && prev == reason {
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	if err := r.reg.SetUndeliverable(ctx, id, reason); err != nil {
		return // Redis away: retried at the next pass
	}
	r.mu.Lock()
	r.problem[id] = reason
	if prev != "" {
		r.problems--
	}
	if reason != "" {
		r.problems++
	}
	n := r.problems
	r.mu.Unlock()
	r.stats.Undeliverable.Store(int64(n))
	switch {
	case reason != "":
		r.log.Error().Str("webhook_id", id).Str("reason", reason).Msg("webhook enabled but cannot be delivered")
	case prev != "":
		r.log.Info().Str("webhook_id", id).Msg("webhook deliverable again")
	}
}

// deleteOrphans removes consumers of webhooks that are disabled or gone
// (for example deleted while no replica ran). Candidates are checked
// against a fresh read of the registry, so a webhook created since want
// was read keeps the consumer another replica just made for it.
func (r *reconciler) deleteOrphans(ctx context.Context, want map[string]subscriptions.Webhook) {
	st, err := r.js.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return
	}
	var orphans []string
	names := st.ConsumerNames(ctx)
	for name := range names.Name() {
		if id, ok := webhookOfConsumer(name); ok {
			if _, live := want[id]; !live {
				orphans = append(orphans, id)
			}
		}
	}
	if len(orphans) == 0 {
		return
	}
	fresh, err := r.reg.All(ctx)
	if err != nil {
		return
	}
	live := make(map[string]bool, len(fresh))
	for _, w := range fresh {
		live[w.ID] = w.Enabled && len(w.Topics) > 0
	}
	for _, id := range orphans {
		if !live[id] {
			r.deleteConsumer(ctx, id)
		}
	}
}

// forgetProblems drops what it knows of webhooks no longer wanted: a
// disabled or deleted webhook is not undeliverable. A disabled one's
// recorded reason is cleared at its next enable's first pass.
func (r *reconciler) forgetProblems(want map[string]subscriptions.Webhook, bad map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, p := range r.problem {
		if _, ok := want[id]; ok {
			continue
		}
		if _, ok := bad[id]; ok {
			continue
		}
		if p != "" {
			r.problems--
		}
		delete(r.problem, id)
	}
	r.stats.Undeliverable.Store(int64(r.problems))
}
