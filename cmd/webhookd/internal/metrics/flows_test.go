package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nwebhookd_flow_skipped_total 2\n", "\nwebhookd_flow_delivered_total 5\n", "\nwebhookd_flow_requests_total 0\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
}
