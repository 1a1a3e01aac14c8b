// Package metrics is the Prometheus view of one webhookd replica
// (/metrics) and the runtime profiles (/debug/pprof/), served on
// --metrics-addr.
package metrics

import (
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/webhookd/webhookd/api/authlimit"
	"github.com/webhookd/webhookd/dispatcher"
)

// Metrics is the Prometheus view of one replica. Labels never carry a
// webhook or account id: with thousands of webhooks that is a cardinality
// bomb, and per-webhook state is in the API's delivery-state extension.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	events   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	batch    prometheus.Histogram
	bytes    prometheus.Histogram

	activityLag prometheus.Histogram
}

// New returns the request metrics, with the Go runtime and process
// collectors; Register adds the dispatcher's counters once it exists (it
// takes the Metrics as its Observer first).
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookd_requests_total",
			Help: "Delivery requests sent, by outcome (success = 200/201/202).",
		}, []string{"outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookd_request_events_total",
			Help: "Events carried by delivery requests, by outcome; failed ones are retried later.",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "webhookd_request_duration_seconds",
			Help:    "Time from sending a delivery request to the end of its response.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "webhookd_request_batch_events",
			Help:    "Events per delivery request.",
			Buckets: []float64{1, 10, 50, 100, 250, 500, 750, 1000},
		}),
		bytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "webhookd_request_body_bytes",
			Help:    "Body size of delivery requests.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 8), // 1 KiB … 16 MiB
		}),
	}
	m.activityLag = newActivityLag()
	for _, o := range dispatcher.Outcomes { // every series exists from the start
		m.requests.WithLabelValues(o)
		m.events.WithLabelValues(o)
	}
	reg.MustRegister(m.requests, m.events, m.duration, m.batch, m.bytes, m.activityLag)
	return m
}

// Register exposes d's counters and gauges.
func (m *Metrics) Register(d *dispatcher.Dispatcher) {
	st := d.Stats()
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhookd_events_delivered_total",
			Help: "Events acknowledged after a successful request.",
		}, func() float64 { return float64(st.Delivered.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhookd_events_dead_lettered_total",
			Help: "Events set aside on the dead-letter subject (not JSON, no id, too large).",
		}, func() float64 { return float64(st.DeadLettered.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhookd_webhooks_disabled_total",
			Help: "Webhooks this replica disabled after --disable-after in error.",
		}, func() float64 { return float64(st.Disabled.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhookd_requests_in_flight",
			Help: "Delivery requests in flight on this replica.",
		}, func() float64 { return float64(st.InFlight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhookd_webhooks_active",
			Help: "Enabled webhooks this replica consumes events for.",
		}, func() float64 { return float64(d.ActiveWebhooks()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhookd_leases_lost_total",
			Help: "Requests not sent because their in-flight slot lease had expired (a paused replica).",
		}, func() float64 { return float64(st.LostLeases.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhookd_buffered_bytes",
			Help: "Bytes of fetched events this replica holds (bounded by --max-buffered-bytes).",
		}, func() float64 { return float64(st.BufferedBytes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhookd_webhooks_undeliverable",
			Help: "Enabled webhooks that cannot be delivered at all (see undeliverable_reason in their delivery state).",
		}, func() float64 { return float64(st.Undeliverable.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhookd_registry_epoch_mismatch",
			Help: "1 while the registry in Redis is not the one this deployment delivers for (nothing is created or deleted).",
		}, func() float64 { return float64(st.RegistryMismatch.Load()) }),
	)
}

// Request implements dispatcher.Observer.
func (m *Metrics) Request(outcome string, events, bytes int, took time.Duration) {
	m.requests.WithLabelValues(outcome).Inc()
	m.events.WithLabelValues(outcome).Add(float64(events))
	m.duration.WithLabelValues(outcome).Observe(took.Seconds())
	m.batch.Observe(float64(events))
	m.bytes.Observe(float64(bytes))
}

// Handler serves /metrics and the runtime profiles under /debug/pprof/.
// It belongs on a private address (--metrics-addr): profiles reveal
// internals and cost CPU while they run.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// RegisterRecovery exposes d's replay, test send and operator event
// counters.
func (m *Metrics) RegisterRecovery(d *dispatcher.Dispatcher) {
	rs := d.RecoveryStats()
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhookd_replays_running",
			Help: "Replays this replica runs now.",
		}, func() float64 { return float64(rs.ReplaysRunning.Load()) }),
		counter("webhookd_events_replayed_total", "Events a replay delivered (acknowledged by the endpoint).", rs.EventsReplayed.Load),
		counter("webhookd_test_sends_total", "Test sends made.", rs.TestSends.Load),
		counter("webhookd_ops_events_sent_total", "Operator events published on NATS (webhookd.ops.<account>.<type>).", rs.OpsSent.Load),
		counter("webhookd_ops_events_posted_total", "Operator events POSTed to --ops-url and answered 2xx.", rs.OpsPosted.Load),
		counter("webhookd_ops_events_failed_total", "Operator events dropped (queue full, shutdown) or not sent after retries, NATS and --ops-url together.", rs.OpsFailed.Load),
	)
}

// RegisterAuthLimit exposes the failed-authentication limit's counters;
// nil (the limit is off) registers nothing.
func (m *Metrics) RegisterAuthLimit(l *authlimit.Limiter) {
	if l == nil {
		return
	}
	st := l.Stats()
	m.reg.MustRegister(
		counter("webhookd_auth_failures_total", "Bad API keys presented to the API or the console's sign-in (answered 401).", st.Failures.Load),
		counter("webhookd_auth_throttled_total", "Requests refused with 429 because their client address presented too many bad keys (--auth-fail-burst).", st.Throttled.Load),
		counter("webhookd_auth_addresses_evicted_total", "Client addresses the failed-authentication limit forgot because its table was full.", st.Evicted.Load),
		counter("webhookd_auth_bad_forwarded_total", "Keys presented through a --trusted-proxies proxy whose X-Forwarded-For was unusable, so the proxy's own address was counted.", st.BadForwarded.Load),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhookd_auth_addresses",
			Help: "Client addresses the failed-authentication limit tracks on this replica.",
		}, func() float64 { return float64(l.Len()) }),
	)
}

// counter is a counter read from v when scraped.
func counter(name, help string, v func() int64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v()) })
}
