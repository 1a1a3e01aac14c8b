package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// changesMaxLen bounds the change feed (XADD MAXLEN ~, so Redis trims
// whole nodes and keeps at least this many entries). An entry is a stream
// id plus a webhook id and a kind, well under 100 bytes in Redis's
// listpacks, so the feed stays under ~10 MB; at five changes a second it
// holds more than five hours, far longer than any replica should lag
// before it falls back to a full reload.
const changesMaxLen = 100000

// The kinds of change in the feed.
const (
	ChangeCreate  = "create"  // Create
	ChangeUpdate  = "update"  // Update of any field but enabled
	ChangeDelete  = "delete"  // Delete
	ChangeEnable  = "enable"  // Update from enabled=false to true (with any other fields)
	ChangeDisable = "disable" // Update to enabled=false, RecordFailure or DisableExpired
)

// ErrChangesTrimmed means the cursor passed to Changes is older than the
// oldest entry the feed still holds, or does not belong to this feed
// (newer than its last entry, or the feed is gone: the registry was
// replaced or restored). Changes may have been lost, so the caller must
// reload the whole registry with All, starting again from ChangesHead.
var ErrChangesTrimmed = errors.New("subscriptions: change feed cursor is no longer in the feed")

// Change is one entry of the registry change feed.
type Change struct {
	ID   string // the webhook's id; load it with Lookup (ErrNotFound once deleted)
	Seq  string // the feed entry's id ("<ms>-<n>"), a cursor for Changes
	Kind string // one of the Change* kinds
}

// Changes returns up to limit feed entries after the cursor after, oldest
// first, and the cursor to pass next time (the last entry's Seq, or after
// when there is none). "" and "0-0" are the start of the feed. With block
// > 0 and nothing new, it waits up to block for an entry (XREAD BLOCK on
// a pooled connection, which a cancelled ctx does not interrupt: keep
// block to a few seconds). A cursor the feed no longer covers is
// ErrChangesTrimmed; a malformed one is ErrInvalid.
//
// Each entry costs O(1) to read, whatever the number of webhooks; a
// change to one webhook is one entry. Entries are hints, not state:
// reload the webhook with Lookup and apply what it says now, so repeated
// or out-of-date entries are harmless.
func (s *Store) Changes(ctx context.Context, after string, limit int, block time.Duration) ([]Change, string, error) {
	if after == "" {
		after = "0-0"
	}
	cur, ok := parseSeq(after)
	if !ok || limit < 1 {
		return nil, after, fmt.Errorf("subscriptions: changes after %q, limit %d: %w", after, limit, ErrInvalid)
	}
	cs, next, err := s.readChanges(ctx, cur, after, limit)
	if err != nil || len(cs) > 0 || block <= 0 {
		return cs, next, err
	}
	// Wait for an entry, then read again through readChanges so that the
	// trim check also covers what arrived while waiting.
	err = s.rdb.XRead(ctx, &redis.XReadArgs{
		Streams: []string{keyChanges, after}, Count: 1, Block: max(block, time.Millisecond),
	}).Err()
	if errors.Is(err, redis.Nil) {
		return nil, after, nil
	}
	if err != nil {
		return nil, after, fmt.Errorf("subscriptions: changes: %w", err)
	}
	return s.readChanges(ctx, cur, after, limit)
}

// ChangesHead returns the id of the feed's newest entry, "0-0" when the
// feed is empty: the cursor to follow the feed from after a full reload.
// Take it before calling All, so a change that lands during the reload is
// read again from the feed rather than lost.
func (s *Store) ChangesHead(ctx context.Context) (string, error) {
	info, exists, err := s.feedInfo(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("subscriptions: changes head: %w", err)
	}
	if !exists || info.LastGeneratedID == "" {
		return "0-0", nil
	}
	return info.LastGeneratedID, nil
}

// readChanges reads entries after cur with the feed's state in one
// MULTI/EXEC, so trimming cannot slip between the check and the read.
func (s *Store) readChanges(ctx context.Context, cur seq, after string, limit int) ([]Change, string, error) {
	var rng *redis.XMessageSliceCmd
	info, exists, err := s.feedInfo(ctx, func(p redis.Pipeliner) {
		rng = p.XRangeN(ctx, keyChanges, "("+after, "+", int64(limit))
	})
	if err != nil {
		return nil, after, fmt.Errorf("subscriptions: changes: %w", err)
	}
	if trimmed(cur, info, exists) {
		return nil, after, ErrChangesTrimmed
	}
	msgs, err := rng.Result()
	if err != nil {
		return nil, after, fmt.Errorf("subscriptions: changes: %w", err)
	}
	out := make([]Change, 0, len(msgs))
	for _, m := range msgs {
		id, _ := m.Values["id"].(string)
		kind, _ := m.Values["kind"].(string)
		out = append(out, Change{ID: id, Seq: m.ID, Kind: kind})
	}
	if len(out) == 0 {
		return nil, after, nil
	}
	return out, out[len(out)-1].Seq, nil
}

// feedInfo runs XLEN and XINFO STREAM on the feed, plus whatever more
// adds, in one transaction. exists is false when the feed has no key
// (XINFO fails then, and XLEN says 0).
func (s *Store) feedInfo(ctx context.Context, more func(redis.Pipeliner)) (redis.XInfoStream, bool, error) {
	var (
		n    *redis.IntCmd
		info *redis.XInfoStreamCmd
	)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.XLen(ctx, keyChanges)
		info = p.XInfoStream(ctx, keyChanges)
		if more != nil {
			more(p)
		}
		return nil
	})
	if n.Err() != nil {
		return redis.XInfoStream{}, false, n.Err()
	}
	if info.Err() != nil {
		if n.Val() == 0 {
			return redis.XInfoStream{}, false, nil // no such key
		}
		return redis.XInfoStream{}, false, info.Err()
	}
	if err != nil && !errors.Is(err, info.Err()) {
		return redis.XInfoStream{}, false, err
	}
	return *info.Val(), true, nil
}

// trimmed reports whether entries after cur may be missing from the feed.
// Trimming removes the oldest entries only, so nothing after cur is gone
// when cur is the newest entry or the first retained one, or when no
// entry was ever removed (entries-added = length). A cursor before the
// first retained entry is reported trimmed even when the removed entries
// all came before it: the feed does not say which ones went.
func trimmed(cur seq, info redis.XInfoStream, exists bool) bool {
	if !exists {
		return cur != (seq{})
	}
	last, _ := parseSeq(info.LastGeneratedID)
	switch {
	case last.less(cur):
		return true // not from this feed
	case cur == last:
		return false
	case info.EntriesAdded <= info.Length:
		return false
	}
	first, ok := parseSeq(info.FirstEntry.ID)
	return !ok || cur.less(first)
}

// seq is a stream entry id: milliseconds and a sequence number.
type seq struct{ ms, n uint64 }

// parseSeq reads "<ms>-<n>"; a bare "<ms>" is not accepted, so that a
// cursor is always one Changes returned.
func parseSeq(s string) (seq, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return seq{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	n, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil {
		return seq{}, false
	}
	return seq{ms, n}, true
}

func (a seq) less(b seq) bool { return a.ms < b.ms || a.ms == b.ms && a.n < b.n }
