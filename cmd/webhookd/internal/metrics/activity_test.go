package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/dispatcher/activity"
)

// The attempt log's drops, buffer and lag are on /metrics.
func TestActivitySeries(t *testing.T) {
	m := New()
	w := activity.NewWriter(activity.Config{Buffer: 1, ObserveLag: m.ObserveActivityLag}, nil, zerolog.Nop())
	m.RegisterActivity(w)
	w.Record(activity.Attempt{ID: "a"})
	w.Record(activity.Attempt{ID: "b"}) // the buffer of one is full: dropped
	m.ObserveActivityLag(3 * time.Millisecond)
	b := scrape(t, m)
	for _, line := range []string{
		"webhookd_activity_written_total 0",
		"webhookd_activity_dropped_total 1",
		"webhookd_activity_failed_total 0",
		"webhookd_activity_buffered 1",
		"webhookd_activity_write_lag_seconds_count 1",
		`webhookd_activity_write_lag_seconds_bucket{le="0.005"} 1`,
	} {
		if !strings.Contains(string(b), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}
