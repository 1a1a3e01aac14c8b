package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/batcher"
)

// flowBody renders each triggering event as a one-event delivery
// envelope, so that the sink (with --no-verify: flow webhooks are not
// signed) counts events, duplicates and latency as it does for system
// webhooks.
const flowBody = `{"data":[{"external_id":"{{ event.id }}","topic":"` + topic + `",` +
	`"payload":{"data":{"attributes":{"event_properties":{"published_ns":{{ event.published_ns|default:0 }}}}}}}],` +
	`"meta":{"klaviyo_webhook_id":"flow"}}`

// runFlow1 measures flow webhooks per event (issue 9): one live flow of
// one send-webhook action on the topic, a sink answering 200 at once,
// events published at the first latency rate and then as fast as
// possible; every event is one POST. Compare with "batch size 1".
func (b *bench) runFlow1(ctx context.Context) ([]*result, error) {
	e, sink, _, err := b.setup(ctx, "flow1", 1, 0, []string{"--no-verify", "--quiet"})
	if err != nil {
		return nil, err
	}
	defer e.close()
	if err := e.createLiveFlow(ctx, "acct0", sink.endpoint("flow")); err != nil {
		return nil, err
	}
	pub, err := newPublisher(e.nc, b.cfg.eventBytes)
	if err != nil {
		return nil, err
	}
	var rows []*result
	for _, rate := range []float64{b.cfg.rates[0], 0} {
		n := b.cfg.batch1Events
		name, what := "flow webhook, max rate", fmt.Sprintf("%s events published at once, 1 action, one POST each", count(n))
		if rate > 0 {
			n = int(rate * b.cfg.latencyFor.Seconds())
			name, what = "flow webhook "+rateName(rate), fmt.Sprintf("%s ev/s for %s, 1 action", rateName(rate), b.cfg.latencyFor)
		}
		if err := sink.reset(ctx); err != nil {
			return rows, err
		}
		m := startMeter(e.pids(sink), "")
		start := time.Now()
		pr, err := pub.publish(ctx, []string{topic + ".acct0"}, n, rate)
		if err != nil {
			m.stop()
			return rows, err
		}
		st, err := sink.waitUnique(ctx, int64(pr.Acked()), 20*time.Millisecond, b.backlogTimeout(pr.Acked(), 500))
		secs := time.Since(start).Seconds()
		row := &result{Scenario: name, What: what, Events: st.UniqueEvents, Published: int64(pr.Acked()), Seconds: secs,
			EventsPerSec: float64(st.UniqueEvents) / secs, RequestsPerSec: float64(st.Requests) / secs, Usage: m.stop()}
		row.fromSink(st)
		if err != nil {
			row.Notes = append(row.Notes, err.Error())
		}
		if st.Latency != nil {
			row.P50, row.P99, row.Max = st.Latency.P50, st.Latency.P99, st.Latency.Max
			row.HasLatency = true
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// createLiveFlow makes a live flow of one action posting flowBody to
// endpoint, then waits until the event stream has the flows consumer.
func (e *env) createLiveFlow(ctx context.Context, account, endpoint string) error {
	tmpl, _ := json.Marshal(flowBody)
	def := fmt.Sprintf(`{"data":{"type":"flow","attributes":{"name":"bench","definition":{"triggers":[{"type":"metric","id":%q}],`+
		`"profile_filter":null,"entry_action_id":"a","actions":[{"temporary_id":"a","type":"send-webhook","links":{"next":null},`+
		`"data":{"status":"live","message":{"name":"sink","url":%q,"headers":{"Klaviyo-Webhook-Id":"flow"},"body":%s}}}]}}}}`, topic, endpoint, tmpl)
	var created struct{ Data struct{ ID string } }
	if err := e.flowCall(ctx, account, http.MethodPost, "/api/flows", def, http.StatusCreated, &created); err != nil {
		return err
	}
	live := fmt.Sprintf(`{"data":{"type":"flow","id":%q,"attributes":{"status":"live"}}}`, created.Data.ID)
	if err := e.flowCall(ctx, account, http.MethodPatch, "/api/flows/"+created.Data.ID, live, http.StatusOK, nil); err != nil {
		return err
	}
	js, err := jetstream.New(e.nc)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := js.Consumer(ctx, "EVENTS", "flows")
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) || time.Now().After(deadline) {
			return fmt.Errorf("waiting for the flows consumer: %w", err)
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
}

func (e *env) flowCall(ctx context.Context, account, method, path, body string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, e.apiURL+path, bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Klaviyo-API-Key "+e.keys[account])
	req.Header.Set("revision", batcher.Version)
	req.Header.Set("Content-Type", "application/vnd.api+json")
	resp, err := e.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
