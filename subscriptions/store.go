package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Config configures a Store.
type Config struct {
	// MaxWebhooksPerAccount caps webhooks per account (default 10, Klaviyo's
	// documented limit). It is checked inside the Create script, so
	// concurrent creates cannot overshoot it.
	MaxWebhooksPerAccount int
}

// Store keeps webhooks, their indexes and their delivery state in Redis;
// rediskeys.go lists the keys.
//
// Create, Update and Delete are single Lua scripts that touch the record and
// every index at once, and they derive the topic index key names inside
// the script. That is atomic on a single primary (with or without
// Sentinel), but under Redis Cluster the keys live in different slots and
// the scripts fail with CROSSSLOT: the registry does not support Cluster.
// The delivery-state scripts (slots, failures) touch only one webhook's
// keys plus wh:erroring and, when they disable it, the registry-wide
// wh:rev, wh:epoch and wh:changes. The change feed and the epoch
// therefore share the single-primary requirement.
//
// Timestamps come from Redis TIME inside the scripts, so every replica of
// webhookd shares one clock. Replication is asynchronous: after a failover
// the newest writes (a lease, an error transition) can be lost, which the
// dispatcher tolerates (at most one lease time of excess concurrency).
type Store struct {
	rdb redis.UniversalClient
	cfg Config

	notify Notifier // transitions.go; nil: none
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	if cfg.MaxWebhooksPerAccount <= 0 {
		cfg.MaxWebhooksPerAccount = 10
	}
	return &Store{rdb: rdb, cfg: cfg}
}

// Get returns the webhook id of account, or ErrNotFound. A webhook of
// another account is ErrNotFound too, so ids of other accounts do not leak.
func (s *Store) Get(ctx context.Context, account, id string) (Webhook, error) {
	if id == "" {
		return Webhook{}, ErrNotFound
	}
	m, err := s.rdb.HGetAll(ctx, keyWebhook(id)).Result()
	if err != nil {
		return Webhook{}, fmt.Errorf("subscriptions: get %s: %w", id, err)
	}
	if len(m) == 0 || m["account_id"] != account {
		return Webhook{}, ErrNotFound
	}
	return decodeWebhook(m)
}

// Lookup returns the webhook id whatever its account, or ErrNotFound
// once it is deleted. It is for the dispatcher, which follows the change
// feed and loads each changed webhook alone; the API uses Get, which
// checks the account.
func (s *Store) Lookup(ctx context.Context, id string) (Webhook, error) {
	if id == "" {
		return Webhook{}, ErrNotFound
	}
	m, err := s.rdb.HGetAll(ctx, keyWebhook(id)).Result()
	if err != nil {
		return Webhook{}, fmt.Errorf("subscriptions: lookup %s: %w", id, err)
	}
	if len(m) == 0 {
		return Webhook{}, ErrNotFound
	}
	return decodeWebhook(m)
}

// List returns the account's webhooks in creation order.
func (s *Store) List(ctx context.Context, account string) ([]Webhook, error) {
	ids, err := s.rdb.ZRange(ctx, keyAccount(account), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("subscriptions: list: %w", err)
	}
	ws, err := s.load(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: list: %w", err)
	}
	out := ws[:0]
	for _, w := range ws {
		if w.AccountID == account {
			out = append(out, w)
		}
	}
	return out, nil
}

// All returns every webhook of every account, enabled or not, ordered by account, then
// creation time, then id. It costs one SMEMBERS and one pipelined HGETALL
// per webhook: a full reload, for start-up and for a change feed cursor
// that is ErrChangesTrimmed; single changes come from Changes and
// Lookup.
func (s *Store) All(ctx context.Context) ([]Webhook, error) {
	ids, err := s.rdb.SMembers(ctx, keyAll).Result()
	if err != nil {
		return nil, fmt.Errorf("subscriptions: all: %w", err)
	}
	ws, err := s.load(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: all: %w", err)
	}
	sort.Slice(ws, func(i, j int) bool {
		a, b := ws[i], ws[j]
		if a.AccountID != b.AccountID {
			return a.AccountID < b.AccountID
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	return ws, nil
}

// load reads the records of ids in one pipeline, in the order given,
// skipping ids whose record is gone (deleted between the index read and
// the pipeline).
func (s *Store) load(ctx context.Context, ids []string) ([]Webhook, error) {
	if len(ids) == 0 {
		return []Webhook{}, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, keyWebhook(id))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ws := make([]Webhook, 0, len(ids))
	for _, c := range cmds {
		m := c.Val()
		if len(m) == 0 {
			continue
		}
		w, err := decodeWebhook(m)
		if err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// Revision returns a counter that changes whenever any webhook is created,
// updated, deleted, enabled or disabled (an Update call bumps it even when
// nothing changed); 0 before the first change. Every change also appends
// to the change feed (Changes), which names the webhook, so a reader need
// not reload All when the revision moves.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	n, err := s.rdb.Get(ctx, keyRev).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("subscriptions: revision: %w", err)
	}
	return n, nil
}

// parseInt reads an integer hash field; missing or empty is 0.
func parseInt(m map[string]string, field string) (int64, error) {
	v := m[field]
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("field %s: %w", field, err)
	}
	return n, nil
}
