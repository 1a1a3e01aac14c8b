package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookd/webhookd/dispatcher"
)

// Every outcome's series exists before the first request, and Request
// counts into the one it names.
func TestRequestSeries(t *testing.T) {
	m := New()
	m.Request(dispatcher.Outcomes[0], 3, 1000, 20*time.Millisecond)
	b := scrape(t, m)
	body := string(b)
	for _, o := range dispatcher.Outcomes {
		want := 0
		if o == dispatcher.Outcomes[0] {
			want = 3
		}
		line := `webhookd_request_events_total{outcome="` + o + `"} ` + strconv.Itoa(want)
		if !strings.Contains(body, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if !strings.Contains(body, "go_goroutines ") {
		t.Error("/metrics lacks the Go runtime collector")
	}
}

// scrape is what m's /metrics serves.
func scrape(t *testing.T, m *Metrics) []byte {
	t.Helper()
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
	return b
}
