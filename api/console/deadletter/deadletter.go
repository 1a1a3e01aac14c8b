// Package deadletter reads the dead-letter stream (EVENTS_DEADLETTER,
// subjects webhookd.deadletter.<code>, written by the dispatcher with the
// Webhookd-Reason headers) for the console's dead-letter page.
package deadletter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/api/console"
	"github.com/webhookd/webhookd/dispatcher"
)

// Reader reads the dead-letter stream. Zero fields take the defaults
// shown.
type Reader struct {
	JS jetstream.JetStream
	// Stream is the dead-letter stream ("EVENTS_DEADLETTER"), Prefix its
	// subject prefix ("webhookd.deadletter").
	Stream, Prefix string
	// DefaultAccount owns events published on a bare topic ("default").
	DefaultAccount string
	// Scan is how many of the newest dead letters an account's view reads
	// (1,000): the stream does not index them by account, so an
	// account's counts cover that window. The operator's counts are
	// exact, from the stream's per-subject totals.
	Scan int
	// Excerpt is how many payload bytes an entry shows (240).
	Excerpt int
}

func (r *Reader) defaults() Reader {
	c := *r
	c.Stream = cmp.Or(c.Stream, "EVENTS_DEADLETTER")
	c.Prefix = cmp.Or(c.Prefix, "webhookd.deadletter")
	c.DefaultAccount = cmp.Or(c.DefaultAccount, "default")
	c.Scan = cmp.Or(c.Scan, 1000)
	c.Excerpt = cmp.Or(c.Excerpt, 240)
	return c
}

// fetchWait bounds one read of the stream; the page shows what arrived.
const fetchWait = 2 * time.Second

// DeadLetters returns the counts by reason and the latest entries of
// account ("" = every account), newest first.
func (r *Reader) DeadLetters(ctx context.Context, account string, latest int) (console.DeadLetters, error) {
	c := r.defaults()
	st, err := c.JS.Stream(ctx, c.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return console.DeadLetters{Kept: "7 days"}, nil // the dispatcher creates it at start-up
	}
	if err != nil {
		return console.DeadLetters{}, fmt.Errorf("dead letters: %w", err)
	}
	info := st.CachedInfo()
	out := console.DeadLetters{Total: info.State.Msgs, Kept: kept(info.Config.MaxAge)}
	scan := c.Scan
	if account == "" {
		scan = latest
		if out.Counts, err = c.exactCounts(ctx, st); err != nil {
			return console.DeadLetters{}, err
		}
	} else {
		out.CountsScanned = true
	}
	entries, err := c.newest(ctx, st, info.State, scan)
	if err != nil {
		return console.DeadLetters{}, err
	}
	counts := map[string]uint64{}
	for i := len(entries) - 1; i >= 0; i-- { // newest first
		e := entries[i]
		if account != "" && e.Account != account {
			continue
		}
		counts[e.Code]++
		if len(out.Latest) < latest {
			out.Latest = append(out.Latest, e)
		}
	}
	out.Scanned = len(entries)
	if account != "" {
		out.Counts = sorted(counts)
	}
	return out, nil
}

// exactCounts sums the stream's per-subject message counts by code.
func (c Reader) exactCounts(ctx context.Context, st jetstream.Stream) ([]console.ReasonCount, error) {
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(c.Prefix+".>"))
	if err != nil {
		return nil, fmt.Errorf("dead letters: counts: %w", err)
	}
	counts := map[string]uint64{}
	for subj, n := range info.State.Subjects {
		counts[strings.TrimPrefix(subj, c.Prefix+".")] += n
	}
	return sorted(counts), nil
}

// newest reads up to n of the newest messages, oldest first, with an
// ordered (ephemeral, flow-controlled) consumer.
func (c Reader) newest(ctx context.Context, st jetstream.Stream, state jetstream.StreamState, n int) ([]console.DeadLetter, error) {
	if state.Msgs == 0 || n <= 0 {
		return nil, nil
	}
	// Asking for no more than the stream holds lets the fetch end at
	// once instead of waiting out fetchWait for messages that never come.
	n = int(min(uint64(n), state.Msgs))
	start := state.FirstSeq
	if state.LastSeq >= uint64(n) && state.LastSeq-uint64(n)+1 > start {
		start = state.LastSeq - uint64(n) + 1
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("dead letters: consumer: %w", err)
	}
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(fetchWait))
	if err != nil {
		return nil, fmt.Errorf("dead letters: fetch: %w", err)
	}
	var out []console.DeadLetter
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		out = append(out, c.entry(m, md))
		if md.Sequence.Stream >= state.LastSeq {
			break
		}
	}
	return out, nil
}

// entry is one dead letter as the console shows it.
func (c Reader) entry(m jetstream.Msg, md *jetstream.MsgMetadata) console.DeadLetter {
	h := m.Headers()
	code := h.Get(dispatcher.HeaderCode)
	if code == "" {
		code = strings.TrimPrefix(m.Subject(), c.Prefix+".")
	}
	subject := h.Get(dispatcher.HeaderSubject)
	_, account, err := dispatcher.ParseSubject(subject, c.DefaultAccount)
	if err != nil {
		account = "" // a bad subject: only the operator sees it
	}
	return console.DeadLetter{
		Sequence: md.Sequence.Stream, At: md.Timestamp, Code: code, Reason: h.Get(dispatcher.HeaderReason),
		Subject: subject, Account: account, Excerpt: excerpt(m.Data(), c.Excerpt), Size: len(m.Data()),
	}
}

// excerpt is the start of a payload as valid UTF-8 (a bad event may not
// be), marked when cut.
func excerpt(b []byte, n int) string {
	cut := len(b) > n
	if cut {
		b = b[:n]
	}
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if cut {
		s += "…"
	}
	return s
}

func sorted(counts map[string]uint64) []console.ReasonCount {
	out := make([]console.ReasonCount, 0, len(counts))
	for code, n := range counts {
		out = append(out, console.ReasonCount{Code: code, Count: n})
	}
	slices.SortFunc(out, func(a, b console.ReasonCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Code, b.Code))
	})
	return out
}

// kept says how long the stream keeps dead letters.
func kept(maxAge time.Duration) string {
	switch {
	case maxAge <= 0:
		return "until the stream's limits drop them"
	case maxAge%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", maxAge/(24*time.Hour))
	}
	return maxAge.String()
}
