package dispatcher

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"
)

// The keeper's sweep gives a retry subject holding events a flag when
// its webhook is enabled but not retrying (a flag that could not be set,
// a consumer deleted as another replica diverted), so a consumer is made
// for them; the retry subject of a deleted webhook is purged. Before,
// such copies waited until the stream's MaxAge.
func TestRetryKeeperSweepsOrphanedCopies(t *testing.T) {
	e := newPfixEnv(t, Config{})
	ctx := context.Background()
	for _, id := range []string{e.w.ID, "gone1"} {
		if _, err := e.js.Publish(ctx, retrySubject(id), pfixEvent("ev-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	x := newIndex(nil, "default", zerolog.Nop())
	x.apply(e.w.ID, &e.w) // enabled, its flag not set
	flags := &flagRecorder{}
	k := &retryKeeper{cfg: e.cfg, js: e.js, idx: x, flags: flags, log: zerolog.Nop(),
		fleet: &fleet{cfg: e.cfg, js: e.js, log: zerolog.Nop(), stats: new(Stats), runners: make(map[string]*runner)}}
	t.Cleanup(k.fleet.stopAll)
	k.tick(ctx)
	flags.mu.Lock()
	flagged := flags.set[e.w.ID]
	flags.mu.Unlock()
	if !flagged {
		t.Errorf("webhook %s with events on its retry subject was not flagged retrying", e.w.ID)
	}
	var subjects []string
	for _, m := range e.retryCopies() {
		subjects = append(subjects, m.Subject)
	}
	if len(subjects) != 1 || subjects[0] != retrySubject(e.w.ID) {
		t.Errorf("retry stream holds %v, want only %s (the deleted webhook's purged)", subjects, retrySubject(e.w.ID))
	}
}

// A partition consumer found missing after start-up (a NATS server back
// without its store, an operator) is made again from a few minutes back,
// not from the start of the stream, which would resend its whole
// history to every webhook.
func TestPartitionConsumerRecreatedFromRecent(t *testing.T) {
	e := newPfixEnv(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := e.js.DeleteConsumer(ctx, e.cfg.Stream, partitionConsumer(0)); err != nil {
		t.Fatal(err)
	}
	x := newIndex(newStuckFeed(t), "default", zerolog.Nop())
	ran := make(chan error, 1)
	go func() { ran <- x.Run(ctx) }()
	rt := newRetrierT(t, e.cfg, e.js, &flagRecorder{})
	hs := newTestHooks(t, e, &fakeStore{}, rt, lookup{})
	stats := new(Stats)
	ps := &partitions{cfg: e.cfg, js: e.js, idx: x, hooks: hs, retry: rt,
		dead:   &deadLetterer{prefix: e.cfg.DeadLetter, js: e.js, log: zerolog.Nop(), stats: stats},
		budget: semaphore.NewWeighted(int64(e.cfg.BatchMaxBytes)), topics: newTopicNoter(&fakeStore{}, zerolog.Nop()),
		log: zerolog.Nop(), stats: stats, running: make(map[int]*partitionRun)}
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		ps.consume(ctx, 0, &partitionRun{})
	}()
	var info *jetstream.ConsumerInfo
	waitFor(t, "the partition consumer to be made again", func() bool {
		c, err := e.js.Consumer(ctx, e.cfg.Stream, partitionConsumer(0))
		if err == nil {
			info = c.CachedInfo()
		}
		return err == nil
	})
	if cc := info.Config; cc.DeliverPolicy != jetstream.DeliverByStartTimePolicy || cc.OptStartTime == nil ||
		cc.OptStartTime.After(time.Now().Add(-4*time.Minute)) {
		t.Errorf("recreated consumer delivers with policy %v from %v, want by start time, minutes ago", cc.DeliverPolicy, cc.OptStartTime)
	}
	cancel()
	<-consumed
	if err := <-ran; err != nil {
		t.Errorf("index Run = %v, want nil", err)
	}
}
