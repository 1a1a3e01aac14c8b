package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A scenario runs in its own env and returns one or more table rows.
type scenario struct {
	name string
	run  func(b *bench, ctx context.Context) ([]*result, error)
}

// scenarios in run order: the ceiling first, the rows that compare with it
// after.
var scenarios = []scenario{
	{"drain", (*bench).runDrain},
	// drain-activity is issue 12's: the drain with the attempt log off and on.
	{"drain-activity", (*bench).runDrainActivity},
	{"latency", (*bench).runLatency},
	{"fanout", (*bench).runFanout},
	{"slow", (*bench).runSlow},
	{"dead", (*bench).runDeadNeighbour},
	{"idle", (*bench).runIdle},
	{"batch1", (*bench).runBatch1},
	{"flow1", (*bench).runFlow1},
	{"memflat", (*bench).runMemFlat},
	// scale is issue 14's: minutes of its own (--skip scale leaves it out).
	{"scale", (*bench).runScale},
}

func scenarioNames() []string {
	var out []string
	for _, s := range scenarios {
		out = append(out, s.name)
	}
	return out
}

// runDrain measures the ceiling (publish, then fetch+ack) and then
// webhookd draining the same events: 1,000,000 ~1 KB events in the stream,
// one webhook, a sink answering 200.
func (b *bench) runDrain(ctx context.Context) ([]*result, error) {
	n := b.cfg.drainEvents
	e, sink, ids, err := b.setup(ctx, "drain", 1, 1, nil)
	if err != nil {
		return nil, err
	}
	defer e.close()
	subject := topic + ".acct0"

	prep, err := b.prepareBacklog(ctx, e, ids, []string{subject}, n)
	if err != nil {
		return nil, err
	}
	pr, pubUsage := prep.pub, prep.pubUsage
	pubRow := &result{
		Scenario: "ceiling publish", What: fmt.Sprintf("PublishAsync of %s events of %d B, Nats-Msg-Id set", count(n), b.cfg.eventBytes),
		Events: int64(pr.Acked()), Seconds: pr.Seconds, EventsPerSec: pr.PerSec,
		Usage: pubUsage, ClientCPU: true,
		LostNA: true,
	}

	rate, cu := prep.ceiling, prep.ceilingUsage
	b.ceilingRate = rate
	ceilRow := &result{
		Scenario: "ceiling fetch+ack", What: "one pull consumer, Fetch(1000) + Ack each, no HTTP",
		Events: int64(pr.Acked()), Seconds: float64(pr.Acked()) / rate, EventsPerSec: rate,
		Usage: cu, ClientCPU: true,
		VsCeiling: 1, LostNA: true,
	}

	bl, err := b.drainBacklog(ctx, e, ids, []*sinkProc{sink}, int64(pr.Acked()), b.backlogTimeout(pr.Acked(), 20_000))
	if err != nil {
		return []*result{pubRow, ceilRow}, err
	}
	bl.Ceiling = prep.ceiling
	row := b.backlogRow("drain", fmt.Sprintf("%s-event backlog, 1 webhook, sink 200", count(n)), bl)
	row.Target = "≥ 60% of ceiling and ≥ 100k ev/s"
	row.setMet(row.VsCeiling >= 0.6 && row.EventsPerSec >= 100_000)
	return []*result{pubRow, ceilRow, row}, nil
}

// runLatency publishes at fixed rates and reports the sink's
// publish→receive latency.
func (b *bench) runLatency(ctx context.Context) ([]*result, error) {
	e, sink, ids, err := b.setup(ctx, "latency", 1, 1, nil)
	if err != nil {
		return nil, err
	}
	defer e.close()
	if err := e.waitConsumers(ctx, ids, time.Minute); err != nil {
		return nil, err
	}
	pub, err := newPublisher(e.nc, b.cfg.eventBytes)
	if err != nil {
		return nil, err
	}
	var rows []*result
	for _, rate := range b.cfg.rates {
		n := int(rate * b.cfg.latencyFor.Seconds())
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
		st, err := sink.waitUnique(ctx, int64(pr.Acked()), 20*time.Millisecond, 30*time.Second)
		secs := time.Since(start).Seconds()
		u := m.stop()
		row := &result{
			Scenario: "latency " + rateName(rate), What: fmt.Sprintf("%s ev/s for %s, 1 webhook, linger %s", rateName(rate), b.cfg.latencyFor, b.linger()),
			Events: st.UniqueEvents, Published: int64(pr.Acked()), Seconds: secs,
			EventsPerSec: float64(st.UniqueEvents) / secs, RequestsPerSec: float64(st.Requests) / secs,
			Usage: u,
		}
		row.fromSink(st)
		if err != nil {
			row.Notes = append(row.Notes, err.Error())
		}
		if st.Latency != nil {
			row.P50, row.P99, row.Max = st.Latency.P50, st.Latency.P99, st.Latency.Max
			row.HasLatency = true
		}
		if rate >= 10_000 {
			limit := float64(b.linger().Milliseconds() + 100)
			row.Target = fmt.Sprintf("p99 ≤ linger+100ms (%.0f ms)", limit)
			row.setMet(row.HasLatency && row.P99 <= limit)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// runFanout: 100 webhooks on one topic, ten accounts of ten; every event
// (published on <topic>.<account>) goes to its account's ten webhooks.
func (b *bench) runFanout(ctx context.Context) ([]*result, error) {
	accounts := max(1, b.cfg.fanoutWebhooks/10)
	e, sink, ids, err := b.setup(ctx, "fanout", accounts, 10, nil)
	if err != nil {
		return nil, err
	}
	defer e.close()
	perAcct := len(ids) / accounts
	var subjects []string
	for a := range accounts {
		subjects = append(subjects, topic+".acct"+strconv.Itoa(a))
	}
	n := b.cfg.fanoutEvents
	prep, err := b.prepareBacklog(ctx, e, ids, subjects, n)
	if err != nil {
		return nil, err
	}
	pr := prep.pub
	want := int64(pr.Acked()) * int64(perAcct)
	bl, err := b.drainBacklog(ctx, e, ids, []*sinkProc{sink}, want, b.backlogTimeout(int(want), 10_000))
	if err != nil {
		return nil, err
	}
	bl.Ceiling = prep.ceiling
	row := b.backlogRow("fan-out", fmt.Sprintf("%d webhooks (%d accounts × %d), %s events → %s deliveries",
		len(ids), accounts, perAcct, count(n), count(int(want))), bl)
	row.Notes = append(row.Notes, "events/s counts deliveries (event × webhook)")
	if lo, hi := minMax(bl.Sink.Webhooks); len(bl.Sink.Webhooks) != len(ids) || lo < int64(pr.Acked()/accounts) {
		row.Notes = append(row.Notes, fmt.Sprintf("uneven: %d webhooks received, per webhook %d..%d", len(bl.Sink.Webhooks), lo, hi))
	}
	return []*result{row}, nil
}

// runSlow: a sink answering after 1 s; throughput should approach
// max-in-flight × batch size per second, never more than max-in-flight
// requests at once.
func (b *bench) runSlow(ctx context.Context) ([]*result, error) {
	e, sink, ids, err := b.setup(ctx, "slow", 1, 1, []string{"--delay", "1s"})
	if err != nil {
		return nil, err
	}
	defer e.close()
	n := b.cfg.slowEvents
	prep, err := b.prepareBacklog(ctx, e, ids, []string{topic + ".acct0"}, n)
	if err != nil {
		return nil, err
	}
	pr := prep.pub
	bl, err := b.drainBacklog(ctx, e, ids, []*sinkProc{sink}, int64(pr.Acked()), b.backlogTimeout(pr.Acked(), 2000))
	if err != nil {
		return nil, err
	}
	bl.Ceiling = prep.ceiling
	row := b.backlogRow("slow endpoint", fmt.Sprintf("sink answers after 1 s, %s-event backlog, max-in-flight 10", count(n)), bl)
	ideal := 10.0 * 1000 / 1.0
	row.Target = fmt.Sprintf("≈ %s ev/s (≥ 80%%), peak in flight ≤ 10", count(int(ideal)))
	row.setMet(row.EventsPerSec >= 0.8*ideal && bl.Sink.PeakInFlight <= 10)
	row.Notes = append(row.Notes, fmt.Sprintf("peak in flight %d", bl.Sink.PeakInFlight))
	return []*result{row}, nil
}

// runDeadNeighbour compares a healthy webhook's backlog drain alone and
// next to a webhook on the same topic whose endpoint refuses connections.
// The phases alternate in one env (alone, with, alone, with: the dead
// webhook is disabled and re-enabled through the API in between), so a
// noisy machine weighs on both sides alike; each side reports its mean.
func (b *bench) runDeadNeighbour(ctx context.Context) ([]*result, error) {
	n := b.cfg.deadEvents
	e, sink, ids, err := b.setup(ctx, "dead", 1, 1, nil)
	if err != nil {
		return nil, err
	}
	defer e.close()
	addr, err := freeAddr() // nothing listens there: connections are refused
	if err != nil {
		return nil, err
	}
	dead, err := e.createWebhook(ctx, "acct0", "dead", "http://"+addr+"/hook")
	if err != nil {
		return nil, err
	}
	var alone, with []backlog
	for phase := range 2 * b.cfg.deadRounds {
		withDead := phase%2 == 1
		if phase > 0 { // webhookd is stopped after a drain
			if err := e.startWebhookd(ctx); err != nil {
				return nil, err
			}
		}
		if err := e.setEnabled(ctx, "acct0", dead, withDead); err != nil {
			return nil, err
		}
		// The dead webhook's consumer comes and goes with it; wait until
		// webhookd has caught up either way.
		want := ids
		if withDead {
			want = []string{ids[0], dead}
		}
		if err := e.waitConsumerSet(ctx, want, time.Minute); err != nil {
			return nil, err
		}
		prep, err := b.prepareBacklog(ctx, e, ids, []string{topic + ".acct0"}, n)
		if err != nil {
			return nil, err
		}
		pr := prep.pub
		bl, err := b.drainBacklog(ctx, e, ids, []*sinkProc{sink}, int64(pr.Acked()), b.backlogTimeout(pr.Acked(), 10_000))
		if err != nil {
			return nil, err
		}
		bl.Ceiling = prep.ceiling
		e.stopWebhookd()
		if withDead {
			with = append(with, bl)
		} else {
			alone = append(alone, bl)
		}
	}
	a := b.backlogRow("dead: healthy alone", fmt.Sprintf("healthy webhook alone, %s-event backlog, mean of %d", count(n), len(alone)), meanBacklog(alone))
	w := b.backlogRow("dead: + refusing", fmt.Sprintf("healthy + a refusing webhook on the same topic, %s events each, mean of %d", count(n), len(with)), meanBacklog(with))
	slow := 1 - w.EventsPerSec/a.EventsPerSec
	var ra, rw []string
	for i := range alone {
		ra = append(ra, rate(float64(alone[i].Want)/alone[i].Seconds))
		rw = append(rw, rate(float64(with[i].Want)/with[i].Seconds))
	}
	w.Notes = append(w.Notes, fmt.Sprintf("alone %s ev/s, with the dead neighbour %s ev/s: slowdown %.0f%%",
		strings.Join(ra, "/"), strings.Join(rw, "/"), 100*slow))
	w.Target = "healthy slowed ≤ 20% vs alone"
	w.setMet(slow <= 0.20)
	w.Extra = map[string]any{"alone_events_per_s": a.EventsPerSec, "slowdown": slow}
	return []*result{a, w}, nil
}

// meanBacklog sums several drains into one: rates come out as the mean
// weighted by time, counters as totals, usage as the mean.
func meanBacklog(bs []backlog) backlog {
	var out backlog
	out.Usage = map[string]usage{}
	for _, b := range bs {
		out.Seconds += b.Seconds
		out.Want += b.Want
		out.Ceiling += b.Ceiling / float64(len(bs))
		s := &out.Sink
		s.Requests += b.Sink.Requests
		s.UniqueEvents += b.Sink.UniqueEvents
		s.Events += b.Sink.Events
		s.Duplicates += b.Sink.Duplicates
		s.BadSignatures += b.Sink.BadSignatures
		s.Mismatches += b.Sink.Mismatches
		s.Malformed += b.Sink.Malformed
		s.PeakInFlight = max(s.PeakInFlight, b.Sink.PeakInFlight)
		s.MaxBatchEvents = max(s.MaxBatchEvents, b.Sink.MaxBatchEvents)
		for k, u := range b.Usage {
			o := out.Usage[k]
			o.CPUPercent += u.CPUPercent / float64(len(bs))
			o.PeakRSSMB = max(o.PeakRSSMB, u.PeakRSSMB)
			o.EndRSSMB = u.EndRSSMB
			out.Usage[k] = o
		}
	}
	return out
}

// runIdle: 1,000 registered webhooks (100 accounts of 10) and no traffic.
func (b *bench) runIdle(ctx context.Context) ([]*result, error) {
	w := b.cfg.idleWebhooks
	accounts := (w + 9) / 10
	e, sink, ids, err := b.setup(ctx, "idle", accounts, 10, nil)
	if err != nil {
		return nil, err
	}
	defer e.close()
	ids = ids[:min(len(ids), w)]
	if err := e.waitConsumers(ctx, ids, 3*time.Minute); err != nil {
		return nil, err
	}
	// Let every runner reach its long poll before measuring.
	if !sleepCtx(ctx, 5*time.Second) {
		return nil, ctx.Err()
	}
	m := startMeter(e.pids(), "")
	waitProfile := e.startProfile(ctx, b.profilePath("idle"), b.cfg.idleFor)
	if !sleepCtx(ctx, b.cfg.idleFor) {
		m.stop()
		return nil, ctx.Err()
	}
	u := m.stop()
	waitProfile()
	st, _ := sink.stats(ctx)
	row := &result{
		Scenario: "idle", What: fmt.Sprintf("%d webhooks (%d accounts), no traffic for %s", len(ids), accounts, b.cfg.idleFor),
		Seconds: b.cfg.idleFor.Seconds(), Usage: u, LostNA: true,
		Target: "webhookd ≤ 5% of a core, ≤ 300 MB RSS",
	}
	row.fromSink(st)
	row.setMet(u["webhookd"].CPUPercent <= 5 && u["webhookd"].PeakRSSMB <= 300)
	return []*result{row}, nil
}

// runBatch1 is the drain with one event per request, the way every peer
// delivers.
func (b *bench) runBatch1(ctx context.Context) ([]*result, error) {
	e, sink, ids, err := b.setup(ctx, "batch1", 1, 1, nil, "--batch-max-events", "1")
	if err != nil {
		return nil, err
	}
	defer e.close()
	n := b.cfg.batch1Events
	prep, err := b.prepareBacklog(ctx, e, ids, []string{topic + ".acct0"}, n)
	if err != nil {
		return nil, err
	}
	pr := prep.pub
	bl, err := b.drainBacklog(ctx, e, ids, []*sinkProc{sink}, int64(pr.Acked()), b.backlogTimeout(pr.Acked(), 500))
	if err != nil {
		return nil, err
	}
	bl.Ceiling = prep.ceiling
	return []*result{b.backlogRow("batch size 1", fmt.Sprintf("%s-event backlog, --batch-max-events 1", count(n)), bl)}, nil
}

// runMemFlat publishes a large backlog for a webhook whose endpoint
// refuses connections and samples webhookd's RSS all along: it must stay
// bounded (MaxAckPending caps what webhookd ever holds), not grow with the
// backlog.
func (b *bench) runMemFlat(ctx context.Context) ([]*result, error) {
	e, err := b.newEnv(ctx, "memflat", []string{"acct0"}, b.cfg.wdFlags...)
	if err != nil {
		return nil, err
	}
	defer e.close()
	if err := e.startWebhookd(ctx); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	id, err := e.createWebhook(ctx, "acct0", "dead", "http://"+addr+"/hook")
	if err != nil {
		return nil, err
	}
	if err := e.waitConsumers(ctx, []string{id}, time.Minute); err != nil {
		return nil, err
	}
	pub, err := newPublisher(e.nc, b.cfg.eventBytes)
	if err != nil {
		return nil, err
	}
	n := b.cfg.memflatEvents
	m := startMeter(e.pids(), "webhookd")
	start := time.Now()
	var q1Peak float64
	const parts = 4
	for i := range parts {
		if _, err := pub.publish(ctx, []string{topic + ".acct0"}, n/parts, 0); err != nil {
			m.stop()
			return nil, err
		}
		m.mark(fmt.Sprintf("%d%% published", 100*(i+1)/parts))
		if i == 0 {
			q1Peak = seriesMax(m.series())
		}
	}
	if !sleepCtx(ctx, b.cfg.memflatHold) {
		m.stop()
		return nil, ctx.Err()
	}
	m.mark("end")
	series := m.series()
	u := m.stop()
	pending, unacked, ciErr := e.webhookBacklog(ctx, id)
	startRSS := series[0].RSSMB
	peak := seriesMax(series) // sampled like q1Peak; VmHWM is in Usage
	row := &result{
		Scenario: "memory, dead endpoint", What: fmt.Sprintf("%s events wait for a refusing endpoint (+%s hold)", count(n), b.cfg.memflatHold),
		Seconds: time.Since(start).Seconds(), Usage: u, LostNA: true,
		Target: "webhookd RSS flat: peak ≤ first-quarter peak + max(16 MB, 25%)",
	}
	growth := peak - q1Peak
	row.setMet(growth <= max(16, 0.25*q1Peak))
	row.Notes = append(row.Notes, fmt.Sprintf("webhookd RSS start %.0f MB, after 1/4 %.0f MB, peak %.0f MB, end %.0f MB",
		startRSS, q1Peak, peak, series[len(series)-1].RSSMB))
	extra := map[string]any{"rss_series": thin(series, 200), "start_rss_mb": startRSS, "quarter_peak_rss_mb": q1Peak}
	if ciErr == nil {
		extra["consumer_pending"] = pending
		extra["consumer_ack_pending"] = unacked
		row.Notes = append(row.Notes, fmt.Sprintf("%s: %d waiting in the stream, %d held unacknowledged", e.backlogConsumer(), pending, unacked))
	}
	row.Extra = extra
	return []*result{row}, nil
}

// setup starts an env with accounts × perAccount webhooks on one sink
// (sinkFlags for the sink, wdFlags for webhookd) and returns their ids.
func (b *bench) setup(ctx context.Context, name string, accounts, perAccount int, sinkFlags []string, wdFlags ...string) (*env, *sinkProc, []string, error) {
	var accts []string
	for a := range accounts {
		accts = append(accts, "acct"+strconv.Itoa(a))
	}
	e, err := b.newEnv(ctx, name, accts, append(b.cfg.wdFlags, wdFlags...)...)
	if err != nil {
		return nil, nil, nil, err
	}
	fail := func(err error) (*env, *sinkProc, []string, error) {
		e.close()
		return nil, nil, nil, err
	}
	sink, err := e.startSink(ctx, "sink", sinkFlags...)
	if err != nil {
		return fail(err)
	}
	if err := e.startWebhookd(ctx); err != nil {
		return fail(err)
	}
	ids := make([]string, accounts*perAccount)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for range min(8, len(ids)) { // the API is quick; a few clients at once
		wg.Go(func() {
			for i := range next {
				acct := accts[i/perAccount]
				id, err := e.createWebhook(ctx, acct, fmt.Sprintf("%s-%d", name, i), sink.endpoint(fmt.Sprintf("%s-%d", name, i)))
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				ids[i] = id
				mu.Unlock()
			}
		})
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return fail(firstErr)
	}
	return e, sink, ids, nil
}

// backlogRow turns a drained backlog into a table row.
func (b *bench) backlogRow(name, what string, bl backlog) *result {
	r := &result{
		Scenario: name, What: what, Published: bl.Want, Events: bl.Sink.UniqueEvents, Seconds: bl.Seconds,
		EventsPerSec: float64(bl.Want) / bl.Seconds, RequestsPerSec: float64(bl.Sink.Requests) / bl.Seconds,
		Usage: bl.Usage,
	}
	r.fromSink(bl.Sink)
	if bl.Ceiling > 0 {
		r.VsCeiling = r.EventsPerSec / bl.Ceiling
		r.Ceiling = bl.Ceiling
	}
	return r
}

// backlogTimeout allows a backlog of n events a minute plus n at minRate.
func (b *bench) backlogTimeout(n int, minRate float64) time.Duration {
	return time.Minute + time.Duration(float64(n)/minRate*float64(time.Second))
}

// linger is the --batch-linger webhookd runs with.
func (b *bench) linger() time.Duration {
	for i, f := range b.cfg.wdFlags {
		if f == "--batch-linger" && i+1 < len(b.cfg.wdFlags) {
			if d, err := time.ParseDuration(b.cfg.wdFlags[i+1]); err == nil {
				return d
			}
		}
	}
	return 200 * time.Millisecond // webhookd's default
}

func rateName(r float64) string {
	if r >= 1000 && int(r)%1000 == 0 {
		return strconv.Itoa(int(r)/1000) + "k"
	}
	return strconv.Itoa(int(r))
}

func seriesMax(s []rssSample) float64 {
	m := 0.0
	for _, x := range s {
		m = max(m, x.RSSMB)
	}
	return m
}

// thin keeps at most n samples (and every annotated one).
func thin(s []rssSample, n int) []rssSample {
	if len(s) <= n {
		return s
	}
	step := (len(s) + n - 1) / n
	var out []rssSample
	for i, x := range s {
		if i%step == 0 || x.Note != "" || i == len(s)-1 {
			out = append(out, x)
		}
	}
	return out
}

func minMax(m map[string]int64) (lo, hi int64) {
	first := true
	for _, v := range m {
		if first || v < lo {
			lo = v
		}
		if first || v > hi {
			hi = v
		}
		first = false
	}
	return lo, hi
}

func selfPid() int { return os.Getpid() }
