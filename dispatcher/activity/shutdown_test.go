package activity

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/test/harness"
)

// Record racing the writer's drain at shutdown: many goroutines record
// while Run is cancelled and keep recording after it returned. Every
// attempt is written (the stream holds it) or counted as dropped (or
// failed); none is left in the buffer unaccounted. Several rounds, each a
// new writer on the same stream, to hit the window between Record's
// check of the shutdown and its send.
func TestRecordRacingShutdownIsAccounted(t *testing.T) {
	js, err := jetstream.New(harness.Connect(t, harness.NATS(t)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Buffer: 1}
	if err := Ensure(context.Background(), js, cfg); err != nil {
		t.Fatal(err)
	}
	const (
		rounds     = 10
		recorders  = 16
		afterClose = 20 // attempts each recorder makes once Run returned
	)
	var stored int64 // written by every round so far
	for round := range rounds {
		w := NewWriter(cfg, js, zerolog.Nop())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()

		var (
			recorded atomic.Int64
			closed   = make(chan struct{})
			wg       sync.WaitGroup
			started  sync.WaitGroup
		)
		for g := range recorders {
			wg.Add(1)
			started.Add(1)
			go func() {
				defer wg.Done()
				started.Done()
				a := attempt("acct", "wh", g)
				id := a.ID
				for i, after := 0, 0; after < afterClose; i++ {
					select {
					case <-closed:
						after++
					default:
					}
					a.ID = id + "-" + strconv.Itoa(i) // cheap: the loop is mostly Record
					w.Record(a)
					recorded.Add(1)
				}
			}()
		}
		started.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("round %d: Run: %v", round, err)
		}
		close(closed)
		wg.Wait()

		s := w.Stats()
		written, dropped, failed := s.Written.Load(), s.Dropped.Load(), s.Failed.Load()
		if n := recorded.Load(); written+dropped+failed != n || w.Buffered() != 0 {
			t.Fatalf("round %d: recorded %d, written %d + dropped %d + failed %d = %d, %d left in the buffer; want every attempt written or counted",
				round, n, written, dropped, failed, written+dropped+failed, w.Buffered())
		}
		stored += written
	}
	st, err := js.Stream(context.Background(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := int64(info.State.Msgs); n != stored {
		t.Errorf("the stream holds %d attempts, the writers counted %d written", n, stored)
	}
}
