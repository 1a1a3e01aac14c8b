package activity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reading newest first. JetStream reads forwards only, so a page is read
// in windows of stream sequences ending at the cursor, each read forwards
// with batched direct gets filtered on the webhook's subject (no consumer
// is created), then walked backwards. The first window is sized from the
// webhook's share of the stream (its subject's message count over the
// stream's span), so a webhook among many costs about one window; each
// further window doubles, down to the stream's first message.
//
// Filters are applied after reading, so a selective filter (an external
// id, a rare status) may scan much of a webhook's log. Work per request is
// bounded by MaxScan stored attempts: when the budget runs out before the
// page is full, the page is returned short with a cursor where the scan
// stopped, and the next page goes on from there. The time-range hints
// narrow the scan from both ends.

// Defaults of the reader.
const (
	// DefaultMaxScan is how many stored attempts one request may examine:
	// 0.2 to 0.5 s of one core with the nats-server in the same process
	// (README, "Attempt log"); a request is never slower than that.
	DefaultMaxScan = 10000
	// getBatch is how many messages one direct get returns at most.
	getBatch = 512
	// maxLag is the longest an attempt may take from its start to being
	// stored: the delivery timeout, the writer's buffer and two
	// acknowledgement waits, with room. A time-range read widens its
	// bounds by it, since the stream's timestamps are the store times.
	maxLag = 5 * time.Minute
)

// ErrNotFound is returned by Get for an attempt that is not in the log.
var ErrNotFound = errors.New("activity: attempt not found")

// Entry is a stored attempt with its position, the cursor of the page
// after it.
type Entry struct {
	Seq uint64
	Attempt
}

// Query selects a page of a webhook's attempts, newest first.
type Query struct {
	// Before is the cursor: only attempts stored before this position.
	// Zero starts at the newest.
	Before uint64
	// Limit is the page size (at least 1).
	Limit int
	// Match, if set, keeps only the attempts it accepts.
	Match func(*Attempt) bool
	// The hints narrow the scan; Match must still check them.
	// ExternalID: only attempts whose stored form contains this id.
	// Since, Until: only attempts started in [Since, Until).
	ExternalID   string
	Since, Until time.Time
}

// Page is a page of attempts, newest first. Next is the cursor of the
// following page, zero when there is none.
type Page struct {
	Entries []Entry
	Next    uint64
	Scanned int // stored attempts examined
}

// Reader reads the attempt log.
type Reader struct {
	cfg     Config
	js      jetstream.JetStream
	MaxScan int // DefaultMaxScan unless set
}

// NewReader returns a reader of the log cfg names.
func NewReader(cfg Config, js jetstream.JetStream) *Reader {
	return &Reader{cfg: cfg.withDefaults(), js: js, MaxScan: DefaultMaxScan}
}

// stored is one message read from the log.
type stored struct {
	seq  uint64
	at   time.Time // store time
	data []byte
}

// List returns a page of account's webhook's attempts.
func (r *Reader) List(ctx context.Context, account, webhook string, q Query) (Page, error) {
	subj := Subject(account, webhook)
	st, err := r.js.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return Page{}, fmt.Errorf("activity stream: %w", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return Page{}, fmt.Errorf("activity stream info: %w", err)
	}
	count, first, last := info.State.Subjects[subj], info.State.FirstSeq, info.State.LastSeq
	upper := last + 1
	if q.Before > 0 && q.Before < upper {
		upper = q.Before
	}
	if count == 0 || upper <= first {
		return Page{}, nil
	}
	if !q.Until.IsZero() {
		if m, err := r.firstAfter(ctx, subj, q.Until.Add(maxLag)); err == nil && m.seq < upper {
			upper = m.seq
		}
	}
	limit := max(q.Limit, 1)
	// Sequences per attempt of this webhook, times the page, with room.
	density := float64(count) / float64(last-first+1)
	window := max(uint64(float64(limit)*1.5/density), uint64(limit))
	var page Page
	for upper > first {
		// Never more than the budget left, by the expected density.
		if left := r.MaxScan - page.Scanned; float64(window)*density > float64(left) {
			window = max(uint64(float64(left)/density), 1)
		}
		lo := first
		if upper-first > window {
			lo = upper - window
		}
		msgs, err := r.read(ctx, subj, lo, upper, expect(upper-lo, density))
		if err != nil {
			return Page{}, err
		}
		page.Scanned += len(msgs)
		for i := len(msgs) - 1; i >= 0; i-- {
			m := msgs[i]
			if !q.Since.IsZero() && m.at.Before(q.Since) {
				return page, nil // started before it was stored: every older one is out too
			}
			e, ok := r.match(m, q)
			if !ok {
				continue
			}
			page.Entries = append(page.Entries, e)
			if len(page.Entries) == limit {
				if m.seq > first {
					page.Next = m.seq
				}
				return page, nil
			}
		}
		upper = lo
		if page.Scanned >= r.MaxScan && upper > first {
			page.Next = upper // budget spent: the next page goes on from here
			return page, nil
		}
		window *= 2
	}
	return page, nil
}

// match decodes m and applies q's filters.
func (r *Reader) match(m stored, q Query) (Entry, bool) {
	if q.ExternalID != "" {
		id, _ := json.Marshal(q.ExternalID)
		if !bytes.Contains(m.data, id) {
			return Entry{}, false
		}
	}
	a, err := decode(m.data)
	if err != nil {
		return Entry{}, false // not an attempt: written by something else
	}
	if q.Match != nil && !q.Match(&a) {
		return Entry{}, false
	}
	return Entry{Seq: m.seq, Attempt: a}, true
}

// Get returns account's webhook's attempt id. An attempt id is a UUIDv7,
// which holds the time it was recorded: the attempt is stored within
// maxLag after it, so the read starts there and stops soon after.
func (r *Reader) Get(ctx context.Context, account, webhook, id string) (Entry, error) {
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 {
		return Entry{}, ErrNotFound
	}
	sec, nsec := u.Time().UnixTime()
	at := time.Unix(sec, nsec)
	subj := Subject(account, webhook)
	first, err := r.firstAfter(ctx, subj, at.Add(-time.Second))
	if errors.Is(err, ErrNotFound) {
		return Entry{}, ErrNotFound
	}
	if err != nil {
		return Entry{}, err
	}
	want, _ := json.Marshal(u.String())
	from := first.seq
	for scanned := 0; scanned < r.MaxScan; {
		msgs, more, err := r.batch(ctx, subj, from, getBatch)
		if err != nil {
			return Entry{}, err
		}
		for _, m := range msgs {
			scanned++
			if m.at.After(at.Add(maxLag)) {
				return Entry{}, ErrNotFound
			}
			if !bytes.Contains(m.data, want) {
				continue
			}
			if a, err := decode(m.data); err == nil && a.ID == u.String() {
				return Entry{Seq: m.seq, Attempt: a}, nil
			}
		}
		if !more || len(msgs) == 0 {
			break
		}
		from = msgs[len(msgs)-1].seq + 1
	}
	return Entry{}, ErrNotFound
}

// expect is how many messages of a subject of density to ask for in a
// window of span sequences: the server cannot stop a batch at a
// sequence, so a batch much larger than the window holds would carry
// messages past it for nothing.
func expect(span uint64, density float64) int {
	return min(getBatch, int(float64(span)*density*1.25)+8)
}

// read returns the messages on subj with sequences in [lo, upper), in
// order, asking for about n messages at a time.
func (r *Reader) read(ctx context.Context, subj string, lo, upper uint64, n int) ([]stored, error) {
	var out []stored
	for from := lo; from < upper; {
		msgs, more, err := r.batch(ctx, subj, from, n)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.seq >= upper {
				return out, nil
			}
			out = append(out, m)
		}
		if !more || len(msgs) == 0 {
			break
		}
		from = msgs[len(msgs)-1].seq + 1
	}
	return out, nil
}

// firstAfter is the first message on subj stored at or after t.
func (r *Reader) firstAfter(ctx context.Context, subj string, t time.Time) (stored, error) {
	msgs, _, err := r.direct(ctx, map[string]any{"start_time": t.UTC(), "next_by_subj": subj, "batch": 1})
	if err != nil {
		return stored{}, err
	}
	if len(msgs) == 0 {
		return stored{}, ErrNotFound
	}
	return msgs[0], nil
}

// batch is up to n messages on subj from sequence from; more says
// whether messages on subj follow the last one.
func (r *Reader) batch(ctx context.Context, subj string, from uint64, n int) ([]stored, bool, error) {
	return r.direct(ctx, map[string]any{"seq": from, "next_by_subj": subj, "batch": n, "max_bytes": 4 << 20})
}

// direct sends one batched direct get ($JS.API.DIRECT.GET) and collects
// its answers up to the end-of-batch marker. No consumer is made: a read
// costs the server a lookup in its per-subject index.
func (r *Reader) direct(ctx context.Context, req map[string]any) ([]stored, bool, error) {
	nc := r.js.Conn()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, false, err
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, false, fmt.Errorf("activity read: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+r.cfg.Stream, inbox, body); err != nil {
		return nil, false, fmt.Errorf("activity read: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out []stored
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("activity read: %w", err)
		}
		switch m.Header.Get("Status") {
		case "":
		case "204": // end of batch
			np, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return out, np > 0, nil
		case "404":
			return out, false, nil
		default:
			return nil, false, fmt.Errorf("activity read: status %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
		}
		s, err := parseStored(m)
		if err != nil {
			return nil, false, err
		}
		out = append(out, s)
	}
}

func parseStored(m *nats.Msg) (stored, error) {
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return stored{}, fmt.Errorf("activity read: bad sequence header: %w", err)
	}
	at, err := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
	if err != nil {
		return stored{}, fmt.Errorf("activity read: bad time header: %w", err)
	}
	return stored{seq: seq, at: at, data: m.Data}, nil
}
