package activity

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/test/harness"
)

// newLog starts a private nats-server and returns a running writer and a
// reader of the log on it.
func newLog(tb testing.TB, cfg Config) (*Writer, *Reader, jetstream.JetStream) {
	tb.Helper()
	js, err := jetstream.New(harness.Connect(tb, harness.NATS(tb)))
	if err != nil {
		tb.Fatal(err)
	}
	if err := Ensure(context.Background(), js, cfg); err != nil {
		tb.Fatal(err)
	}
	w := NewWriter(cfg, js, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Writer.Run: %v", err)
		}
	})
	return w, NewReader(cfg, js), js
}

func attempt(account, webhook string, i int) Attempt {
	a := Attempt{
		ID: uuid.Must(uuid.NewV7()).String(), AccountID: account, WebhookID: webhook,
		StartedAt: time.Now().UTC().Truncate(time.Microsecond), Duration: 12 * time.Millisecond,
		Trigger: TriggerLive, Outcome: Delivered, Status: 200, Events: 1, Bytes: 420, Attempt: 1,
		ExternalIDs: []string{fmt.Sprintf("ev-%s-%d", webhook, i)},
	}
	if i%3 == 0 {
		a.Outcome, a.Status, a.ErrorClass, a.Error = Failed, 500, ClassServer, "status 500"
		a.NextAttemptAt = a.StartedAt.Add(time.Second)
	}
	return a
}

// waitWritten waits until the writer has stored n attempts in all.
func waitWritten(tb testing.TB, w *Writer, n int64) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for w.Stats().Written.Load() < n {
		if time.Now().After(deadline) {
			tb.Fatalf("written %d attempts, want %d (dropped %d, failed %d)", w.Stats().Written.Load(), n,
				w.Stats().Dropped.Load(), w.Stats().Failed.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRecordNeverBlocksAndCountsDrops(t *testing.T) {
	js, err := jetstream.New(harness.Connect(t, harness.NATS(t)))
	if err != nil {
		t.Fatal(err)
	}
	// Not running: nothing empties the buffer of 4.
	var logged strings.Builder
	w := NewWriter(Config{Buffer: 4}, js, zerolog.New(&logged))
	done := make(chan struct{})
	go func() {
		for i := range 100 {
			w.Record(attempt("acct", "wh", i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Record blocked with a full buffer")
	}
	if got := w.Stats().Dropped.Load(); got != 96 {
		t.Errorf("Dropped = %d, want 96", got)
	}
	if got := w.Buffered(); got != 4 {
		t.Errorf("Buffered() = %d, want 4", got)
	}
	// Run's minute tick reports the drops since the last report, once.
	seen := w.reportDrops(0)
	w.reportDrops(seen)
	if n := strings.Count(logged.String(), `"dropped":96`); n != 1 || strings.Count(logged.String(), "\n") != 1 {
		t.Errorf("drop reports logged %q, want one line with the count 96", logged.String())
	}
}

func TestWriterStoresOnceAndObservesLag(t *testing.T) {
	var mu sync.Mutex
	var lags []time.Duration
	w, r, js := newLog(t, Config{ObserveLag: func(d time.Duration) { mu.Lock(); lags = append(lags, d); mu.Unlock() }})
	a := attempt("acct", "wh", 3)
	a.ResponseExcerpt = `{"error":"boom"}`
	w.Record(a)
	w.Record(a) // the same id again: stored once (Nats-Msg-Id)
	waitWritten(t, w, 2)
	st, err := js.Stream(context.Background(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
	mu.Lock()
	if len(lags) != 2 || lags[0] <= 0 {
		t.Errorf("lags = %v, want two positive durations", lags)
	}
	mu.Unlock()
	got, err := r.Get(context.Background(), "acct", "wh", a.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if diff := cmp.Diff(a, got.Attempt); diff != "" {
		t.Errorf("Get: stored attempt differs (-recorded +read):\n%s", diff)
	}
	if _, err := r.Get(context.Background(), "other", "wh", a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get from another account: err %v, want ErrNotFound", err)
	}
	if _, err := r.Get(context.Background(), "acct", "wh", uuid.Must(uuid.NewV7()).String()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of an unknown id: err %v, want ErrNotFound", err)
	}
}

// Pages chain without gaps or repeats, newest first, while attempts of
// the same and other webhooks keep arriving.
func TestPagesChainWhileWritesArrive(t *testing.T) {
	w, r, _ := newLog(t, Config{})
	for i := range 300 {
		w.Record(attempt("acct", "mine", i))
		for j := range 3 {
			w.Record(attempt("acct", fmt.Sprintf("other%d", j), i))
		}
	}
	waitWritten(t, w, 1200)
	stop := make(chan struct{})
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		for i := 300; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			w.Record(attempt("acct", "mine", i))
			w.Record(attempt("acct", "other0", i))
			time.Sleep(time.Millisecond)
		}
	}()
	defer func() { close(stop); <-writing }()

	seen := map[string]bool{}
	var ids []string
	var cursor uint64
	var lastSeq uint64
	for pages := 0; ; pages++ {
		p, err := r.List(context.Background(), "acct", "mine", Query{Before: cursor, Limit: 17})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			if seen[e.ID] {
				t.Fatalf("attempt %s on two pages", e.ID)
			}
			if lastSeq != 0 && e.Seq >= lastSeq {
				t.Fatalf("page %d: seq %d after %d: not newest first", pages, e.Seq, lastSeq)
			}
			if e.WebhookID != "mine" {
				t.Fatalf("attempt of webhook %q in mine's page", e.WebhookID)
			}
			seen[e.ID], lastSeq = true, e.Seq
			ids = append(ids, e.ExternalIDs[0])
		}
		if p.Next == 0 {
			break
		}
		cursor = p.Next
	}
	// Every attempt stored before the first page was read is there: the
	// oldest 300 in particular, each once and in order.
	n := len(ids)
	if n < 300 {
		t.Fatalf("read %d attempts, want at least 300", n)
	}
	for i := range 300 {
		if want := fmt.Sprintf("ev-mine-%d", i); ids[n-1-i] != want {
			t.Fatalf("attempt %d from the oldest is %s, want %s", i, ids[n-1-i], want)
		}
	}
}

func TestListFilters(t *testing.T) {
	w, r, _ := newLog(t, Config{})
	for i := range 90 {
		w.Record(attempt("acct", "wh", i))
		w.Record(attempt("acct", "noise", i))
	}
	waitWritten(t, w, 180)
	ctx := context.Background()

	p, err := r.List(ctx, "acct", "wh", Query{Limit: 100, Match: func(a *Attempt) bool { return a.Outcome == Failed }})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 30 || p.Next != 0 {
		t.Errorf("failed attempts: %d (next %d), want 30 and no next page", len(p.Entries), p.Next)
	}
	for _, e := range p.Entries {
		if e.Outcome != Failed {
			t.Errorf("outcome filter let through %+v", e.Attempt)
		}
	}

	p, err = r.List(ctx, "acct", "wh", Query{Limit: 20, ExternalID: "ev-wh-42",
		Match: func(a *Attempt) bool { return len(a.ExternalIDs) > 0 && a.ExternalIDs[0] == "ev-wh-42" }})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 1 || p.Entries[0].ExternalIDs[0] != "ev-wh-42" {
		t.Errorf("external id filter found %d attempts, want the one of ev-wh-42", len(p.Entries))
	}

	// A budget smaller than the log: short pages whose cursors still
	// chain to every match.
	r.MaxScan = 10
	var found int
	var cursor uint64
	for range 100 {
		p, err := r.List(ctx, "acct", "wh", Query{Before: cursor, Limit: 100, Match: func(a *Attempt) bool { return a.Outcome == Failed }})
		if err != nil {
			t.Fatal(err)
		}
		found += len(p.Entries)
		if p.Next == 0 {
			break
		}
		cursor = p.Next
	}
	if found != 30 {
		t.Errorf("budgeted pages found %d failed attempts, want 30", found)
	}

	// Since stops the scan; a future Since finds nothing.
	p, err = r.List(ctx, "acct", "wh", Query{Limit: 10, Since: time.Now().Add(time.Hour)})
	if err != nil || len(p.Entries) != 0 {
		t.Errorf("since in the future: %d entries, err %v; want none", len(p.Entries), err)
	}
	p, err = r.List(ctx, "acct", "nobody", Query{Limit: 10})
	if err != nil || len(p.Entries) != 0 || p.Next != 0 {
		t.Errorf("webhook without attempts: %+v, %v; want an empty last page", p, err)
	}
}

// With NATS away the writer counts what it cannot store and never
// blocks; once NATS is back it stores again.
func TestWriterCountsFailuresWhileNATSAway(t *testing.T) {
	dir := t.TempDir()
	ns := harness.NATSWithDir(t, dir)
	port := ns.Addr().(*net.TCPAddr).Port
	js, err := jetstream.New(harness.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	if err := Ensure(context.Background(), js, Config{}); err != nil {
		t.Fatal(err)
	}
	w := NewWriter(Config{}, js, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	w.Record(attempt("acct", "wh", 0))
	waitWritten(t, w, 1)

	ns.Shutdown()
	ns.WaitForShutdown()
	for i := range 5 {
		w.Record(attempt("acct", "wh", i+1))
	}
	deadline := time.Now().Add(60 * time.Second)
	for w.Stats().Failed.Load() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("failed = %d after NATS went away, want 5 (written %d)", w.Stats().Failed.Load(), w.Stats().Written.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}

	harness.NATSWithDir(t, dir, func(o *server.Options) { o.Port = port })
	deadline = time.Now().Add(60 * time.Second)
	for w.Stats().Written.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing stored after NATS came back (written %d, failed %d)", w.Stats().Written.Load(), w.Stats().Failed.Load())
		}
		w.Record(attempt("acct", "wh", 99))
		time.Sleep(100 * time.Millisecond)
	}
}
