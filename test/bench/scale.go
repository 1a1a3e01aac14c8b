package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/webhookd/webhookd/subscriptions"
)

// The scale scenario (issue 14): many idle webhooks — ten per account,
// two topics each — on one NATS (R1), one Redis and two webhookd
// replicas. Webhooks are created with subscriptions.Store directly (the
// API would take minutes for 100,000). Webhook j of an account
// subscribes to topics 2j and 2j+1 of subscriptions.KlaviyoTopics, so an
// event on <topic 2j>.<account> is for exactly that webhook; topics 20-22
// and two custom ones are subscribed by nobody (the per-event cost
// traffic).

// scaleHook is one webhook of the scale scenario.
type scaleHook struct {
	account, id string
	subject     string // its first topic's subject: events for it alone
}

// scaleEnv is the scale scenario's world.
type scaleEnv struct {
	*env
	b        *bench
	store    *subscriptions.Store
	rdb      *redis.Client
	sink     *sinkProc
	pub      *publisher
	hooks    []scaleHook
	replicas [2]*replica
	starts   int
	fig      *scaleFigures
}

// scaleAccount names account a.
func scaleAccount(a int) string { return "acct" + strconv.Itoa(a) }

// hookSubject is the subject of webhook j's first topic on account.
func hookSubject(account string, j int) string {
	return subscriptions.KlaviyoTopics[2*j] + "." + account
}

// quietTopics are subscribed by no webhook: events on them are read,
// routed and acknowledged, never delivered.
var quietTopics = []string{
	subscriptions.KlaviyoTopics[20], subscriptions.KlaviyoTopics[21], subscriptions.KlaviyoTopics[22],
	"event:klaviyo.bench_quiet_0", "event:klaviyo.bench_quiet_1",
}

func (b *bench) runScale(ctx context.Context) ([]*result, error) {
	n := b.cfg.scaleWebhooks
	if b.cfg.partitions == 0 {
		// Its drain and readiness checks watch partition consumers; the
		// per-webhook model's figures at 1k-20k are issue 14's table.
		return nil, errors.New("the scale scenario measures partitioned consumption: run it with --partitions > 0")
	}
	e, err := b.newEnv(ctx, "scale", []string{scaleAccount(0)}, b.cfg.wdFlags...)
	if err != nil {
		return nil, err
	}
	defer e.close()
	opt, err := redis.ParseURL(e.redisURL)
	if err != nil {
		return nil, err
	}
	s := &scaleEnv{env: e, b: b, rdb: redis.NewClient(opt), fig: &scaleFigures{Webhooks: n, Accounts: (n + 9) / 10}}
	defer s.rdb.Close()
	s.store = subscriptions.New(s.rdb, subscriptions.Config{MaxWebhooksPerAccount: 10})
	if s.sink, err = e.startSink(ctx, "sink"); err != nil {
		return nil, err
	}
	if s.pub, err = newPublisher(e.nc, b.cfg.eventBytes); err != nil {
		return nil, err
	}
	row := &result{Scenario: "scale", LostNA: true, Scale: s.fig,
		What: fmt.Sprintf("%s webhooks (%s accounts × 10, two topics each), 2 replicas, NATS R1, Redis", count(n), count(s.fig.Accounts))}
	start := time.Now()
	err = s.steps(ctx)
	row.Seconds = time.Since(start).Seconds()
	row.Usage = s.fig.idleUsage
	row.Notes = append(row.Notes, s.fig.notes...)
	s.fig.judge()
	if s.fig.allMet != nil {
		row.setMet(*s.fig.allMet)
	}
	return []*result{row}, err
}

// steps runs the measurements in order; each figure is recorded as it
// is measured, so a failure keeps the earlier ones.
func (s *scaleEnv) steps(ctx context.Context) error {
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"empty registry", s.measureEmpty},
		{"create", s.create},
		{"first start", s.firstStart},
		{"restart", s.measureRestart},
		{"idle", s.measureIdle},
		{"renames", s.measureRenames},
		{"new webhook", s.measureNewWebhook},
		{"per-event cost", s.measureCost},
		{"dead neighbour", s.measureDead},
	}
	for _, st := range steps {
		if st.name == "dead neighbour" && s.b.cfg.scaleDeadEvents <= 0 {
			continue
		}
		t := time.Now()
		if err := st.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		s.b.logf("   scale: %s done (%.1fs, load %s)", st.name, time.Since(t).Seconds(), load1())
		s.fig.Load = append(s.fig.Load, load1())
	}
	return nil
}

// startReplicas starts both replicas at once and waits for their APIs.
func (s *scaleEnv) startReplicas(ctx context.Context) error {
	s.starts++
	var errs [2]error
	var wg sync.WaitGroup
	for i := range s.replicas {
		wg.Go(func() {
			name := fmt.Sprintf("webhookd-%c-%d", 'a'+i, s.starts)
			s.replicas[i], errs[i] = s.startReplica(ctx, name)
		})
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return err
	}
	// env's helpers watch replica a (exits, profiles).
	s.wd, s.apiURL, s.metricsURL = s.replicas[0].p, s.replicas[0].apiURL, s.replicas[0].metricsURL
	return nil
}

// stopReplicas stops both replicas at once (SIGTERM: they hand their
// partitions and queued events back).
func (s *scaleEnv) stopReplicas() {
	var wg sync.WaitGroup
	for _, r := range s.replicas {
		if r != nil {
			wg.Go(r.p.stop)
		}
	}
	wg.Wait()
}

func (s *scaleEnv) pids() map[string]int {
	return map[string]int{
		"webhookd": s.replicas[0].p.Pid(), "webhookd2": s.replicas[1].p.Pid(),
		"nats": s.natsP.Pid(), "redis": s.redisP.Pid(), "sink0": s.sink.p.Pid(), "bench": selfPid(),
	}
}

// measureEmpty records each replica's RSS with an empty registry, after
// it has settled: the base of the memory-per-webhook figure.
func (s *scaleEnv) measureEmpty(ctx context.Context) error {
	if err := s.startReplicas(ctx); err != nil {
		return err
	}
	if err := s.waitConsumers(ctx, nil, time.Minute); err != nil {
		return err
	}
	if !sleepCtx(ctx, 5*time.Second) {
		return ctx.Err()
	}
	for _, r := range s.replicas {
		rss, _, err := memKB(r.p.Pid())
		if err != nil {
			return err
		}
		s.fig.EmptyRSSMB = append(s.fig.EmptyRSSMB, mb(rss))
	}
	s.stopReplicas()
	return nil
}

// create makes the webhooks with the replicas stopped (registry only).
func (s *scaleEnv) create(ctx context.Context) error {
	n := s.fig.Webhooks
	s.hooks = make([]scaleHook, n)
	start := time.Now()
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		failed   atomic.Bool
	)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				a, j := i/10, i%10
				acct := scaleAccount(a)
				w, err := s.store.Create(ctx, subscriptions.NewWebhook{
					AccountID: acct, Name: fmt.Sprintf("scale-%d", i), EndpointURL: s.sink.endpoint("s"),
					Secret: secret, Topics: []string{subscriptions.KlaviyoTopics[2*j], subscriptions.KlaviyoTopics[2*j+1]},
				})
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					failed.Store(true)
					continue
				}
				s.hooks[i] = scaleHook{account: acct, id: w.ID, subject: hookSubject(acct, j)}
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil || failed.Load() {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	s.fig.CreateSeconds = time.Since(start).Seconds()
	return ctx.Err()
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// sample returns k webhooks spread evenly over all of them.
func (s *scaleEnv) sample(k int) []scaleHook {
	k = min(k, len(s.hooks))
	out := make([]scaleHook, k)
	for i := range k {
		out[i] = s.hooks[i*len(s.hooks)/k]
	}
	return out
}

// deliverSample publishes one event for each of the sampled webhooks and
// waits until every one of them has received it; published is called
// right after the publish (to start the replicas, for the restart).
func (s *scaleEnv) deliverSample(ctx context.Context, hooks []scaleHook, published func() error, timeout time.Duration) error {
	if err := s.sink.reset(ctx); err != nil {
		return err
	}
	subjects := make([]string, len(hooks))
	for i, h := range hooks {
		subjects[i] = h.subject
	}
	if _, err := s.pub.publish(ctx, subjects, len(subjects), 0); err != nil {
		return err
	}
	if published != nil {
		if err := published(); err != nil {
			return err
		}
	}
	var st sinkStats
	err := waitFor(ctx, s.wd, timeout, fmt.Sprintf("one delivery to each of %d webhooks", len(hooks)), func() bool {
		var err error
		st, err = s.sink.stats(ctx)
		if err != nil || len(st.Webhooks) < len(hooks) {
			return false
		}
		for _, h := range hooks {
			if st.Webhooks[h.id] == 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("%w (%d webhooks reached)", err, len(st.Webhooks))
	}
	if st.BadSignatures+st.Mismatches+st.Malformed > 0 {
		return fmt.Errorf("sink: %d bad signatures, %d mismatches, %d malformed", st.BadSignatures, st.Mismatches, st.Malformed)
	}
	return nil
}

// firstStart starts the replicas on the full registry and checks that a
// sample of webhooks delivers (a cold start: nothing of the registry was
// ever loaded by a replica).
func (s *scaleEnv) firstStart(ctx context.Context) error {
	t := time.Now()
	if err := s.startReplicas(ctx); err != nil {
		return err
	}
	if err := s.deliverSample(ctx, s.sample(s.b.cfg.scaleSample), nil, 2*time.Minute); err != nil {
		return err
	}
	s.fig.ColdStartSeconds = time.Since(t).Seconds()
	return nil
}

// measureRestart stops both replicas, publishes one event for each
// sampled webhook while they are away, starts both again and times from
// their start until every sampled webhook has its event.
func (s *scaleEnv) measureRestart(ctx context.Context) error {
	s.stopReplicas()
	var t time.Time
	err := s.deliverSample(ctx, s.sample(s.b.cfg.scaleSample), func() error {
		t = time.Now()
		return s.startReplicas(ctx)
	}, 2*time.Minute)
	if err != nil {
		return err
	}
	s.fig.RestartSeconds = time.Since(t).Seconds()
	return nil
}
