package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/webhookd/webhookd/dispatcher/activity"
)

// activityLagBuckets span a local store's millisecond to a NATS outage's
// seconds (the writer gives up on a publish after two 10 s waits).
var activityLagBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// RegisterActivity exposes the attempt log writer's counters; pass
// ObserveActivityLag as its Config.ObserveLag before creating it.
func (m *Metrics) RegisterActivity(w *activity.Writer) {
	st := w.Stats()
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhookd_activity_written_total",
			Help: "Attempts stored in the attempt log (acknowledged by the stream).",
		}, func() float64 { return float64(st.Written.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhookd_activity_dropped_total",
			Help: "Attempts not logged because the writer's buffer was full (deliveries are unaffected).",
		}, func() float64 { return float64(st.Dropped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhookd_activity_failed_total",
			Help: "Attempts not logged because their publish failed twice (NATS unavailable).",
		}, func() float64 { return float64(st.Failed.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhookd_activity_buffered",
			Help: "Attempts waiting for the attempt log writer.",
		}, func() float64 { return float64(w.Buffered()) }),
	)
}

// ObserveActivityLag records the time from recording an attempt to its
// stored acknowledgement.
func (m *Metrics) ObserveActivityLag(d time.Duration) { m.activityLag.Observe(d.Seconds()) }

func newActivityLag() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "webhookd_activity_write_lag_seconds",
		Help:    "Time from recording an attempt to the attempt log's acknowledgement of it.",
		Buckets: activityLagBuckets,
	})
}
