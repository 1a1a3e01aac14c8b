package flows

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Redis keys. A flow is one JSON record; its actions live inside it,
// so a flow and its actions change atomically.
//
//	flow:{<id>}                STRING the flow as JSON
//	flow:action:<action id>    STRING the id of the action's flow
//	flow:acct:{<a>}            ZSET   the account's flow ids by creation (ms)
//	flow:all                   SET    every flow id
//	flow:rev                   STRING counter bumped by every write (delivery's poll)
//	flow:counts:<action id>    HASH   outcome -> count
//	flow:slots:<action id>     ZSET   concurrency leases: holder -> expiry (ms)
const (
	keyAll = "flow:all"
	keyRev = "flow:rev"
)

func keyFlow(id string) string         { return "flow:{" + id + "}" }
func keyActionFlow(id string) string   { return "flow:action:" + id }
func keyAccount(account string) string { return "flow:acct:{" + account + "}" }
func keyCounts(actionID string) string { return "flow:counts:" + actionID }
func keySlots(actionID string) string  { return "flow:slots:" + actionID }

// MaxFlowsPerAccount bounds one account's flows: the delivery index
// holds every flow in memory.
const MaxFlowsPerAccount = 100

// ErrLimit: the account has MaxFlowsPerAccount flows.
var ErrLimit = errors.New("flows: too many flows in this account")

// ErrLastAction: the action is its flow's only one; a flow has at least
// one action, so the flow is deleted instead.
var ErrLastAction = errors.New("flows: the flow's only action")

// Store keeps flows in Redis.
type Store struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb, now: time.Now}
}

// newID returns a random id of n base-62 characters.
func newID(n int) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

// Create stores f as a new flow of f.AccountID. Its actions' Next and
// f.EntryID name actions by their position-independent temporary ids in
// temp (action index -> temporary id); Create gives every action and
// message a real id and resolves the links. Status starts as draft.
func (s *Store) Create(ctx context.Context, f Flow, temp []string) (Flow, error) {
	now := s.now().UTC()
	f.ID = newID(6)
	f.Status = StatusDraft
	f.Created, f.Updated = now, now
	real := make(map[string]string, len(temp))
	for i := range f.Actions {
		id := newID(8)
		real[temp[i]] = id
		f.Actions[i].ID = id
		f.Actions[i].Message.ID = newID(8)
		f.Actions[i].Created, f.Actions[i].Updated = now, now
	}
	for i := range f.Actions {
		if f.Actions[i].Next != "" {
			f.Actions[i].Next = real[f.Actions[i].Next]
		}
	}
	f.EntryID = real[f.EntryID]
	n, err := s.rdb.ZCard(ctx, keyAccount(f.AccountID)).Result()
	if err != nil {
		return Flow{}, fmt.Errorf("flows: count: %w", err)
	}
	if n >= MaxFlowsPerAccount {
		return Flow{}, ErrLimit
	}
	rec, err := json.Marshal(f)
	if err != nil {
		return Flow{}, fmt.Errorf("flows: encode: %w", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, keyFlow(f.ID), rec, 0)
		for _, a := range f.Actions {
			p.Set(ctx, keyActionFlow(a.ID), f.ID, 0)
		}
		p.ZAdd(ctx, keyAccount(f.AccountID), redis.Z{Score: float64(now.UnixMilli()), Member: f.ID})
		p.SAdd(ctx, keyAll, f.ID)
		p.Incr(ctx, keyRev)
		return nil
	})
	if err != nil {
		return Flow{}, fmt.Errorf("flows: create: %w", err)
	}
	return f, nil
}

// Get returns the flow id of account; another account's flow is
// ErrNotFound.
func (s *Store) Get(ctx context.Context, account, id string) (Flow, error) {
	f, err := s.load(ctx, s.rdb, id)
	if err == nil && f.AccountID != account {
		return Flow{}, ErrNotFound
	}
	return f, err
}

func (s *Store) load(ctx context.Context, c redis.Cmdable, id string) (Flow, error) {
	raw, err := c.Get(ctx, keyFlow(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Flow{}, ErrNotFound
	}
	if err != nil {
		return Flow{}, fmt.Errorf("flows: get %s: %w", id, err)
	}
	var f Flow
	if err := json.Unmarshal(raw, &f); err != nil {
		return Flow{}, fmt.Errorf("flows: decode %s: %w", id, err)
	}
	return f, nil
}

// List returns the account's flows, oldest first.
func (s *Store) List(ctx context.Context, account string) ([]Flow, error) {
	ids, err := s.rdb.ZRange(ctx, keyAccount(account), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("flows: list: %w", err)
	}
	return s.many(ctx, ids)
}

// All returns every flow of every account (the delivery index).
func (s *Store) All(ctx context.Context) ([]Flow, error) {
	ids, err := s.rdb.SMembers(ctx, keyAll).Result()
	if err != nil {
		return nil, fmt.Errorf("flows: all: %w", err)
	}
	slices.Sort(ids)
	return s.many(ctx, ids)
}

func (s *Store) many(ctx context.Context, ids []string) ([]Flow, error) {
	out := make([]Flow, 0, len(ids))
	for chunk := range slices.Chunk(ids, 500) {
		keys := make([]string, len(chunk))
		for i, id := range chunk {
			keys[i] = keyFlow(id)
		}
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("flows: load: %w", err)
		}
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue // deleted meanwhile
			}
			var f Flow
			if err := json.Unmarshal([]byte(str), &f); err != nil {
				return nil, fmt.Errorf("flows: decode %s: %w", chunk[i], err)
			}
			out = append(out, f)
		}
	}
	return out, nil
}

// Rev is the revision: it changes with every write.
func (s *Store) Rev(ctx context.Context) (int64, error) {
	n, err := s.rdb.Get(ctx, keyRev).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("flows: rev: %w", err)
	}
	return n, nil
}

// FlowOfAction returns the flow that holds action id, in account.
func (s *Store) FlowOfAction(ctx context.Context, account, actionID string) (Flow, error) {
	id, err := s.rdb.Get(ctx, keyActionFlow(actionID)).Result()
	if errors.Is(err, redis.Nil) {
		return Flow{}, ErrNotFound
	}
	if err != nil {
		return Flow{}, fmt.Errorf("flows: action %s: %w", actionID, err)
	}
	return s.Get(ctx, account, id)
}

// Update applies change to flow id of account atomically (optimistic:
// ErrConflict when the flow changed meanwhile more than a few times).
func (s *Store) Update(ctx context.Context, account, id string, change func(*Flow) error) (Flow, error) {
	return s.update(ctx, account, id, change, nil)
}

// update is Update; also, when not nil, queues more commands in the
// same transaction.
func (s *Store) update(ctx context.Context, account, id string, change func(*Flow) error, also func(redis.Pipeliner)) (Flow, error) {
	var out Flow
	for range 5 {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			f, err := s.load(ctx, tx, id)
			if err != nil {
				return err
			}
			if f.AccountID != account {
				return ErrNotFound
			}
			if err := change(&f); err != nil {
				return err
			}
			f.Updated = s.now().UTC()
			rec, err := json.Marshal(f)
			if err != nil {
				return fmt.Errorf("flows: encode: %w", err)
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, keyFlow(id), rec, 0)
				if also != nil {
					also(p)
				}
				p.Incr(ctx, keyRev)
				return nil
			})
			out = f
			return err
		}, keyFlow(id))
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		return out, err
	}
	return Flow{}, ErrConflict
}
