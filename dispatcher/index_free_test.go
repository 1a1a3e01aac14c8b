package dispatcher

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// TestIndexLoadFreesMemory: a full load of freeAfterLoad webhooks or
// more hands its decoding garbage back to the OS at once
// (debug.FreeOSMemory, counted as a forced GC); a smaller one does not
// pay for that.
func TestIndexLoadFreesMemory(t *testing.T) {
	store, _, _ := newPartitionStore(t)
	create := func(from, n int) {
		var wg sync.WaitGroup
		next := make(chan int)
		errs := make(chan error, 1)
		for range 8 {
			wg.Go(func() {
				for i := range next {
					_, err := store.Create(context.Background(), subscriptions.NewWebhook{
						AccountID: "free" + strconv.Itoa(i/10), Name: "w", EndpointURL: "https://example.com/hook",
						Secret: "s", Topics: []string{ixSMS},
					})
					if err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				}
			})
		}
		for i := from; i < from+n; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
	}
	forced := func() uint32 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.NumForcedGC
	}
	load := func() int {
		x := newIndex(store, "default", zerolog.Nop())
		if _, err := x.reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		return x.Len()
	}

	create(0, 10)
	before := forced()
	if n := load(); n != 10 {
		t.Fatalf("loaded %d webhooks, want 10", n)
	}
	if got := forced() - before; got != 0 {
		t.Errorf("a load of 10 webhooks forced %d GCs, want 0", got)
	}
	create(10, freeAfterLoad-10)
	before = forced()
	if n := load(); n != freeAfterLoad {
		t.Fatalf("loaded %d webhooks, want %d", n, freeAfterLoad)
	}
	if got := forced() - before; got != 1 {
		t.Errorf("a load of %d webhooks forced %d GCs, want 1 (debug.FreeOSMemory)", freeAfterLoad, got)
	}
}
