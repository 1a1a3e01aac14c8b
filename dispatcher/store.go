package dispatcher

import (
	"context"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// Store is what the dispatcher needs from the webhook registry
// (*subscriptions.Store implements it). Each part takes only its slice:
// the reconciler a registry, runners and deliveries the slots and the
// delivery state, the catalog loop the topic catalog.
type Store interface {
	registry
	slotStore
	stateStore
	AddTopics(ctx context.Context, account string, topics ...string) error
}

// registry is the reconciler's view: the webhooks, a revision that moves
// on every change, the registry's identity, and where to say that a
// webhook cannot be delivered.
type registry interface {
	All(ctx context.Context) ([]subscriptions.Webhook, error)
	Revision(ctx context.Context) (int64, error)
	Epoch(ctx context.Context) (string, error)
	EnsureEpoch(ctx context.Context) (string, error)
	SetUndeliverable(ctx context.Context, id, reason string) error
}

// slotStore is the cross-replica request semaphore.
type slotStore interface {
	AcquireSlot(ctx context.Context, id, holder string, max int, lease time.Duration) (subscriptions.Slot, error)
	ExtendSlot(ctx context.Context, id, holder string, lease time.Duration) (bool, error)
	ReleaseSlot(ctx context.Context, id, holder string) error
}

// stateStore records outcomes: the error state, backoff and disabling.
type stateStore interface {
	RecordSuccess(ctx context.Context, id string) (bool, error)
	RecordFailure(ctx context.Context, id string, f subscriptions.Failure, b subscriptions.Backoff) (subscriptions.FailureResult, error)
	DisableExpired(ctx context.Context, after time.Duration) ([]string, error)
}
