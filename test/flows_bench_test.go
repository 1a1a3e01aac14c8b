package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	dflows "github.com/webhookd/webhookd/dispatcher/flows"
)

// BenchmarkFlowWebhookPerEvent measures flow webhooks per event: one live
// action, a sink answering 200 at once, b.N events published as fast as
// JetStream takes them (one POST each). It reports events/s from the
// first publish to the last delivery and the p50/p99 latency from publish
// to arrival. Run: go test -run '^$' -bench FlowWebhookPerEvent -benchtime 5000x ./test/
func BenchmarkFlowWebhookPerEvent(b *testing.B) {
	e := newEnv(b, nil)
	e.startDispatcher()
	d := e.startFlows(func(c *dflows.Config) { c.MaxInFlight = 64 })
	api := e.apiServer()
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ At int64 }
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		lat = append(lat, time.Since(time.Unix(0, body.At)))
		mu.Unlock()
	}))
	b.Cleanup(sink.Close)
	_, actionID := createFlow(b, api, topicOrder, sink.URL, `{"At": {{ event.At|default:0 }}, "email": "{{ person.email }}"}`, d)

	b.ResetTimer()
	start := time.Now()
	futures := make([]jetstream.PubAckFuture, 0, 256)
	for i := range b.N {
		body := fmt.Appendf(nil, `{"data":{"type":"event","id":"b-%d","attributes":{"event_properties":{"At":%d}}},`+
			`"included":[{"type":"profile","id":"p","attributes":{"email":"a@example.com"}}]}`, i, time.Now().UnixNano())
		f, err := e.js.PublishAsync(topicOrder, body)
		if err != nil {
			b.Fatal(err)
		}
		if futures = append(futures, f); len(futures) == cap(futures) || i == b.N-1 {
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				}
			}
			futures = futures[:0]
		}
	}
	waitCounts(b, api, actionID, map[string]float64{"delivered": float64(b.N)})
	elapsed := time.Since(start)
	b.StopTimer()
	mu.Lock()
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(p(0.5), "p50_ms")
	b.ReportMetric(p(0.99), "p99_ms")
	mu.Unlock()
}
