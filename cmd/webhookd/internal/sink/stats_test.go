package sink

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLatencyHistogram(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 255, 256, 258, 1000, 123456, 1 << 40, 1<<62 + 12345, 1<<63 - 1} {
		i := latBucket(v)
		if i <= prev || i >= latBuckets {
			t.Errorf("latBucket(%d) = %d, want above %d and below %d", v, i, prev, latBuckets)
		}
		prev = i
		if mid := latBucketMid(i); float64(abs(mid-v)) > float64(v)/128 {
			t.Errorf("latBucketMid(latBucket(%d)) = %d, more than 1/128 off", v, mid)
		}
	}

	var h latencyHistogram
	if h.summary() != nil {
		t.Error("summary of no samples != nil")
	}
	for v := range int64(1000) {
		h.record(v * 100) // 0 .. 99.9 ms
	}
	got := h.summary()
	want := &LatencySummary{Count: 1000, P50: 49.9, P99: 98.9, Max: 99.9}
	approx := cmp.Comparer(func(a, b float64) bool { return a == b || (a-b)/b < 0.004 && (b-a)/b < 0.004 })
	if diff := cmp.Diff(want, got, approx); diff != "" {
		t.Errorf("summary mismatch (-want +got):\n%s", diff)
	}
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
