package metrics

import (
	"strings"
	"testing"

	dflows "github.com/webhookd/webhookd/dispatcher/flows"
)

func TestRegisterFlows(t *testing.T) {
	m := New()
	var st dflows.Stats
	st.Skipped.Add(2)
	st.Delivered.Add(5)
	m.RegisterFlows(&st)
	b := scrape(t, m)
	for _, want := range []string{"\nwebhookd_flow_skipped_total 2\n", "\nwebhookd_flow_delivered_total 5\n", "\nwebhookd_flow_requests_total 0\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
}
