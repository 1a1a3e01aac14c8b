package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// measureIdle measures both replicas, nats-server and Redis with no
// traffic, after a settling pause.
func (s *scaleEnv) measureIdle(ctx context.Context) error {
	if !sleepCtx(ctx, 5*time.Second) {
		return ctx.Err()
	}
	m := startMeter(s.pids(), "")
	waitProfile := s.startProfile(ctx, s.b.profilePath("scale-idle"), s.b.cfg.scaleFor)
	if !sleepCtx(ctx, s.b.cfg.scaleFor) {
		m.stop()
		return ctx.Err()
	}
	u := m.stop()
	waitProfile()
	if s.metricsURL != "" { // --profile: where replica a's memory goes
		s.startProfileURL(ctx, s.metricsURL+"/debug/pprof/heap", s.b.profilePath("scale-heap"), time.Second)()
	}
	f := s.fig
	f.idleUsage = u
	f.IdleCPUWebhookd = []float64{u["webhookd"].CPUPercent, u["webhookd2"].CPUPercent}
	f.IdleCPUNats, f.IdleCPURedis = u["nats"].CPUPercent, u["redis"].CPUPercent
	f.RSSWebhookdMB = []float64{u["webhookd"].EndRSSMB, u["webhookd2"].EndRSSMB}
	f.RSSNatsMB = u["nats"].EndRSSMB
	if len(f.EmptyRSSMB) == 2 && f.Webhooks > 0 {
		delta := (f.RSSWebhookdMB[0] - f.EmptyRSSMB[0] + f.RSSWebhookdMB[1] - f.EmptyRSSMB[1]) / 2
		f.BytesPerWebhook = delta * 1024 * 1024 / float64(f.Webhooks)
	}
	return nil
}

// measureRenames renames random webhooks, 5 a second (Store.Update, as
// the API's PATCH does), and measures what that costs the replicas and
// Redis.
func (s *scaleEnv) measureRenames(ctx context.Context) error {
	m := startMeter(s.pids(), "")
	waitProfile := s.startProfile(ctx, s.b.profilePath("scale-renames"), s.b.cfg.scaleFor)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	end := time.Now().Add(s.b.cfg.scaleFor)
	n := 0
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			m.stop()
			return ctx.Err()
		case <-tick.C:
		}
		h := s.hooks[rand.IntN(len(s.hooks))]
		name := "renamed-" + strconv.Itoa(n)
		if _, err := s.store.Update(ctx, h.account, h.id, subscriptions.Patch{Name: &name}); err != nil {
			m.stop()
			return err
		}
		n++
	}
	u := m.stop()
	waitProfile()
	s.fig.RenameCPUWebhookd = u["webhookd"].CPUPercent + u["webhookd2"].CPUPercent
	s.fig.RenameCPURedis = u["redis"].CPUPercent
	s.fig.Renames = n
	return nil
}

// measureNewWebhook creates a webhook on a fresh account, publishes one
// event for it at once and times until the sink has it, ten times.
func (s *scaleEnv) measureNewWebhook(ctx context.Context) error {
	for i := range 10 {
		if err := s.sink.reset(ctx); err != nil {
			return err
		}
		acct := "new" + strconv.Itoa(i)
		t := time.Now()
		w, err := s.store.Create(ctx, subscriptions.NewWebhook{
			AccountID: acct, Name: "new", EndpointURL: s.sink.endpoint("new"), Secret: secret,
			Topics: []string{subscriptions.KlaviyoTopics[0]},
		})
		if err != nil {
			return err
		}
		if _, err := s.pub.publish(ctx, []string{hookSubject(acct, 0)}, 1, 0); err != nil {
			return err
		}
		err = waitFor(ctx, s.wd, 30*time.Second, "a new webhook's first delivery", func() bool {
			st, err := s.sink.stats(ctx)
			return err == nil && st.Webhooks[w.ID] > 0
		})
		if err != nil {
			return err
		}
		s.fig.NewWebhookMs = append(s.fig.NewWebhookMs, float64(time.Since(t).Microseconds())/1000)
	}
	return nil
}

// costRun is one drained backlog of the per-event cost comparison.
type costRun struct {
	Subjects     int     `json:"subjects"`
	Events       int     `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_s"`
	CPUWebhookd  float64 `json:"cpu_webhookd_percent"` // both replicas
	CPUNats      float64 `json:"cpu_nats_percent"`
	MicrosPerEv  float64 `json:"cpu_us_per_event"` // webhookd + nats-server
	// Redelivered is how many more messages the partitions delivered than
	// were published: events handed out again after AckWait (e.g. fetched
	// by a replica that gave its partition up meanwhile).
	Redelivered int64 `json:"redelivered"`
}

// measureCost drains the same number of events published over 50,000
// subjects (10,000 accounts × 5 topics) and over one account's five
// topics. No webhook subscribes to those topics: what is measured is
// consumption — the partition consumers, the index lookup and the ack —
// which under per-webhook consumers grew with webhooks × events.
func (s *scaleEnv) measureCost(ctx context.Context) error {
	var spread, one []string
	for a := range 10_000 {
		for _, t := range quietTopics {
			spread = append(spread, t+"."+scaleAccount(a))
		}
	}
	for _, t := range quietTopics {
		one = append(one, t+"."+scaleAccount(0))
	}
	// few: one account in each partition, so every partition consumer
	// works as in spread, but over a handful of subjects: spread vs few
	// is the cost of many subjects, few vs one that of many partitions.
	var few []string
	covered := make(map[int]bool)
	for a := 0; len(covered) < s.partitions; a++ {
		if k := partitionOf(scaleAccount(a), s.partitions); !covered[k] {
			covered[k] = true
			for _, t := range quietTopics {
				few = append(few, t+"."+scaleAccount(a))
			}
		}
	}
	for _, c := range []struct {
		dst      *costRun
		subjects []string
		name     string
	}{{&s.fig.CostSpread, spread, "spread"}, {&s.fig.CostOne, one, "one"}, {&s.fig.CostFew, few, "few"}} {
		r, err := s.drainQuiet(ctx, c.subjects, s.b.cfg.scaleEvents, "scale-cost-"+c.name)
		if err != nil {
			return err
		}
		*c.dst = r
	}
	return nil
}

// drainQuiet publishes n events over subjects with the replicas stopped,
// starts them and measures from the first fetched event until every
// partition has acknowledged everything.
func (s *scaleEnv) drainQuiet(ctx context.Context, subjects []string, n int, profile string) (costRun, error) {
	s.stopReplicas()
	pr, err := s.pub.publish(ctx, subjects, n, 0)
	if err != nil {
		return costRun{}, err
	}
	before := s.delivered(ctx, nil)
	if err := s.startReplicas(ctx); err != nil {
		return costRun{}, err
	}
	var t0 time.Time
	if err := waitFor(ctx, s.wd, time.Minute, "first event fetched", func() bool {
		t0 = time.Now()
		return s.delivered(ctx, nil) > before
	}); err != nil {
		return costRun{}, err
	}
	m := startMeter(s.pids(), "")
	defer s.profileBoth(ctx, profile)()
	watch := s.watchDrain(nil)
	err = waitFor(ctx, s.wd, 5*time.Minute, fmt.Sprintf("%s events acknowledged", count(n)), func() bool {
		ok, _ := watch.done(ctx)
		return ok
	})
	u := m.stop()
	if err != nil {
		return costRun{}, err
	}
	secs := time.Since(t0).Seconds()
	redelivered := int64(s.delivered(ctx, nil)-before) - int64(pr.Acked())
	r := costRun{Redelivered: redelivered, Subjects: len(subjects), Events: pr.Acked(), Seconds: secs, EventsPerSec: float64(pr.Acked()) / secs,
		CPUWebhookd: u["webhookd"].CPUPercent + u["webhookd2"].CPUPercent, CPUNats: u["nats"].CPUPercent}
	// The meter started a poll after t0; its window is within a few ms.
	r.MicrosPerEv = (r.CPUWebhookd + r.CPUNats) / 100 * secs / float64(pr.Acked()) * 1e6
	return r, nil
}

// measureDead compares a healthy webhook's backlog delivery alone, next
// to a webhook of another account in the same partition that gets as many
// events and delivers them, and next to the same webhook refusing
// connections (alternating phases in the same processes, like the dead
// scenario).
func (s *scaleEnv) measureDead(ctx context.Context) error {
	healthy := s.hooks[0]
	k := partitionOf(healthy.account, s.partitions)
	deadAcct := ""
	for i := 0; deadAcct == ""; i++ {
		if a := "dead" + strconv.Itoa(i); partitionOf(a, s.partitions) == k {
			deadAcct = a
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	dead, err := s.store.Create(ctx, subscriptions.NewWebhook{
		AccountID: deadAcct, Name: "dead", EndpointURL: "http://" + addr + "/hook", Secret: secret,
		Topics: []string{subscriptions.KlaviyoTopics[0]},
	})
	if err != nil {
		return err
	}
	n := s.b.cfg.scaleDeadEvents
	refusing, working := "http://"+addr+"/hook", s.sink.endpoint("neighbour")
	var alone, busy, with []float64
	// alone: the neighbour disabled; busy: it delivers to the sink (the
	// control: any neighbour's events share the partition's throughput);
	// dead: it refuses connections.
	for phase := range 6 {
		kind := phase % 3
		enabled := kind != 0
		p := subscriptions.Patch{Enabled: &enabled}
		switch kind {
		case 1:
			p.EndpointURL = &working
		case 2:
			p.EndpointURL = &refusing
		}
		// Changed with the replicas up, so they apply it (a disable purges
		// the neighbour's retry subject), then give them a moment.
		if _, err := s.store.Update(ctx, deadAcct, dead.ID, p); err != nil {
			return err
		}
		if !sleepCtx(ctx, 2*time.Second) {
			return ctx.Err()
		}
		subjects := []string{healthy.subject}
		if enabled {
			subjects = append(subjects, hookSubject(deadAcct, 0))
		}
		rate, err := s.healthyDrain(ctx, healthy.id, subjects, n, fmt.Sprintf("scale-dead-%d-%s", phase, [3]string{"alone", "busy", "refusing"}[kind]))
		if err != nil {
			return err
		}
		switch kind {
		case 0:
			alone = append(alone, rate)
		case 1:
			busy = append(busy, rate)
		default:
			with = append(with, rate)
		}
	}
	s.fig.DeadAlone, s.fig.DeadBusy, s.fig.DeadWith = alone, busy, with
	s.fig.DeadPartition = k
	return nil
}

// healthyDrain publishes n events for the healthy webhook (and as many
// for the dead one when subjects has two) with the replicas stopped,
// starts them and returns the healthy webhook's events/s from its first
// delivery to its last.
func (s *scaleEnv) healthyDrain(ctx context.Context, id string, subjects []string, n int, profile string) (float64, error) {
	s.stopReplicas()
	if err := s.sink.reset(ctx); err != nil {
		return 0, err
	}
	if _, err := s.pub.publish(ctx, subjects, n*len(subjects), 0); err != nil {
		return 0, err
	}
	if err := s.startReplicas(ctx); err != nil {
		return 0, err
	}
	var t0 time.Time
	if err := waitFor(ctx, s.wd, time.Minute, "healthy webhook's first delivery", func() bool {
		st, err := s.sink.stats(ctx)
		t0 = time.Now()
		return err == nil && st.Webhooks[id] > 0
	}); err != nil {
		return 0, err
	}
	// The healthy webhook's partition may be on either replica.
	defer s.profileBoth(ctx, profile)()
	var st sinkStats
	err := waitFor(ctx, s.wd, 5*time.Minute, "healthy webhook's backlog", func() bool {
		var err error
		st, err = s.sink.stats(ctx)
		return err == nil && st.Webhooks[id] >= int64(n)
	})
	if err != nil {
		return 0, err
	}
	secs := time.Since(t0).Seconds()
	if st.BadSignatures+st.Mismatches+st.Malformed > 0 {
		return 0, fmt.Errorf("sink: %d bad signatures", st.BadSignatures+st.Mismatches+st.Malformed)
	}
	return float64(n) / secs, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// profileBoth saves a CPU profile of each replica (--profile), as
// <name>-a and <name>-b; wait for them with the returned function.
func (s *scaleEnv) profileBoth(ctx context.Context, name string) (wait func()) {
	var waits []func()
	for i, r := range s.replicas {
		if r == nil || r.metricsURL == "" {
			continue
		}
		url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", r.metricsURL, max(1, int(s.b.cfg.profileFor.Seconds())))
		waits = append(waits, s.startProfileURL(ctx, url, s.b.profilePath(fmt.Sprintf("%s-%c", name, 'a'+i)), s.b.cfg.profileFor))
	}
	return func() {
		for _, w := range waits {
			w()
		}
	}
}
