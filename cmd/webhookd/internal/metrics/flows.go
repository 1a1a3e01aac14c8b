package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	dflows "github.com/webhookd/webhookd/dispatcher/flows"
)

// RegisterFlows exposes flow webhook delivery's counters. Per-action
// counts are in the API (GET /webhookd/flow-actions/{id}/counts), not
// labels: one series per action would grow without bound.
func (m *Metrics) RegisterFlows(st *dflows.Stats) {
	counter := func(name, help string, v func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v()) })
	}
	m.reg.MustRegister(
		counter("webhookd_flow_triggered_total", "Flow webhook (event, live action) pairs started on this replica.", st.Triggered.Load),
		counter("webhookd_flow_requests_total", "Flow webhook requests sent.", st.Requests.Load),
		counter("webhookd_flow_delivered_total", "Flow webhook events delivered (a 2xx).", st.Delivered.Load),
		counter("webhookd_flow_skipped_total", "Flow webhook events skipped: refused, retries exhausted, or the body did not render.", st.Skipped.Load),
		counter("webhookd_flow_retries_total", "Flow webhook failures scheduled for a retry.", st.Retries.Load),
		counter("webhookd_flow_render_errors_total", "Flow webhook bodies that did not render (budget, error, not JSON).", st.RenderErrors.Load),
	)
}
