package flows

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// Delete removes flow id of account with its actions' counters.
func (s *Store) Delete(ctx context.Context, account, id string) error {
	f, err := s.Get(ctx, account, id)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, keyFlow(id))
		for _, a := range f.Actions {
			p.Del(ctx, keyActionFlow(a.ID), keyCounts(a.ID), keySlots(a.ID))
		}
		p.ZRem(ctx, keyAccount(account), id)
		p.SRem(ctx, keyAll, id)
		p.Incr(ctx, keyRev)
		return nil
	})
	if err != nil {
		return fmt.Errorf("flows: delete %s: %w", id, err)
	}
	return nil
}

// DeleteAction removes action actionID of account from its flow, with
// its counters, and returns the flow as it is then. The chain closes
// over the gap: the action before it links to the action after it, and
// if it was the entry action, the next one becomes the entry. A flow's
// only action is ErrLastAction. Delivery drops the action at its next
// index reload; its retries still queued are not sent.
func (s *Store) DeleteAction(ctx context.Context, account, actionID string) (Flow, error) {
	f, err := s.FlowOfAction(ctx, account, actionID)
	if err != nil {
		return Flow{}, err
	}
	return s.update(ctx, account, f.ID, func(f *Flow) error { return f.removeAction(actionID) }, func(p redis.Pipeliner) {
		p.Del(ctx, keyActionFlow(actionID), keyCounts(actionID), keySlots(actionID))
	})
}

// removeAction takes action id out of f and closes the chain over it.
func (f *Flow) removeAction(id string) error {
	i := slices.IndexFunc(f.Actions, func(a Action) bool { return a.ID == id })
	switch {
	case i < 0:
		return ErrNotFound // deleted meanwhile
	case len(f.Actions) == 1:
		return ErrLastAction
	}
	next := f.Actions[i].Next
	for j := range f.Actions {
		if f.Actions[j].Next == id {
			f.Actions[j].Next = next
		}
	}
	if f.EntryID == id {
		f.EntryID = next
	}
	f.Actions = slices.Delete(f.Actions, i, i+1)
	return nil
}

// ActionExists reports whether action id is in some flow (it was not
// deleted, alone or with its flow).
func (s *Store) ActionExists(ctx context.Context, id string) (bool, error) {
	n, err := s.rdb.Exists(ctx, keyActionFlow(id)).Result()
	if err != nil {
		return false, fmt.Errorf("flows: action %s: %w", id, err)
	}
	return n == 1, nil
}
