package dispatcher

import (
	"testing"

	"github.com/rs/zerolog"
)

// TestPartitionedBudgetSplit: under partitioned consumption the byte
// budget is three quarters for the partition runners and a quarter for
// the retry runners, so failing webhooks' retries can never hold what
// the partitions need (and the other way round); each part holds at
// least one batch.
func TestPartitionedBudgetSplit(t *testing.T) {
	for _, c := range []struct {
		name            string
		total, batch    int64
		parts, retrying int64
	}{
		{"8 MiB", 8 << 20, 1 << 20, 6 << 20, 2 << 20},
		{"one batch", 1 << 20, 1 << 20, 1 << 20, 1 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Partitions: 2, MaxBufferedBytes: c.total, BatchMaxBytes: int(c.batch)}
			js, _ := testJS(t, cfg)
			store, _, _ := newPartitionStore(t)
			d, err := New(cfg, js, store, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			p := d.part
			if p == nil {
				t.Fatal("no partitioned consumption with Partitions 2")
			}
			if !p.budget.TryAcquire(c.parts) || p.budget.TryAcquire(1) {
				t.Errorf("partition budget is not %d bytes", c.parts)
			}
			if p.parts.budget != p.budget {
				t.Error("the partition runners do not use the partition budget")
			}
			rb := p.keeper.fleet.budget
			if rb == p.budget {
				t.Fatal("retry runners share the partitions' budget")
			}
			if !rb.TryAcquire(c.retrying) || rb.TryAcquire(1) {
				t.Errorf("retry budget is not %d bytes", c.retrying)
			}
		})
	}
}

// TestKickStale: after the streams are recreated (generation gen), the
// pulls of partitions whose consumer handle is older are ended; a pull
// on a current handle, or a partition between pulls, is left alone.
func TestKickStale(t *testing.T) {
	ps := &partitions{running: make(map[int]*partitionRun)}
	kicked := make(map[int]bool)
	for k, gen := range []int64{0, 1, 2, 0} {
		r := &partitionRun{gen: gen}
		if k != 3 { // partition 3 is between pulls
			r.kick = func() { kicked[k] = true }
		}
		ps.running[k] = r
	}
	ps.kickStale(2)
	if !kicked[0] || !kicked[1] || kicked[2] || kicked[3] {
		t.Errorf("kicked %v, want partitions 0 and 1 (handles older than generation 2) only", kicked)
	}
}
