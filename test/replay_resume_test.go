package test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// A replay's replica is killed (SIGKILL) mid-window: another replica
// claims the replay once its lease runs out and resumes it from its
// checkpoint. Every event of the window arrives again (at least once);
// what the killed replica had sent past its last checkpoint arrives
// twice, at most one batch (a replay sends one batch at a time and
// records its checkpoint after each); the replay ends done with every
// event of the window found and sent once in its counters; live and
// replay requests together never exceed --max-in-flight, the killed
// replica's slots included.
func TestReplayResumesAfterReplicaCrash(t *testing.T) {
	t.Parallel()
	const (
		maxInFlight = 2
		batch       = 20
		window      = 2000 // 100 batches of at least 50 ms each: 5 s and more
		killAfter   = 300  // events the first replica sends before it is killed
	)
	e := newEnv(t, nil)
	flags := []string{"--api-key", testKey + "=default",
		"--batch-max-events", strconv.Itoa(batch), "--max-in-flight", strconv.Itoa(maxInFlight),
		// The killed replica's slots come back after the lease: short,
		// so the survivor is not kept waiting half a minute.
		"--delivery-timeout", "2s", "--semaphore-lease", "6s"}
	p1 := e.startWebhookd(flags...)
	api1 := p1.apiURL(t)
	sink := NewSink(t, testSecret)
	sink.Respond = func(int64, *Request) int {
		time.Sleep(50 * time.Millisecond) // long enough for requests to overlap
		return http.StatusOK
	}
	w := e.create("default", sink.URL, topicSMS)
	since := time.Now()
	ids := e.publish(topicSMS, "ev", window)
	waitDelivered(t, sink, ids, 60*time.Second)
	e.waitIdle(w.ID)
	live := sink.Delivered() // what live delivery brought; the replay adds to it

	rid := startReplay(t, api1, w.ID, since)
	stopLive := e.publishRoundRobin(func() string { return "live" }, []string{topicSMS}, 10*time.Millisecond)
	// p1, the only replica when the replay was created, runs it; a
	// second replica starts now and can take it only once p1 is gone.
	waitFor(t, 30*time.Second, "the first replayed events", func() bool { return e.replay(w.ID, rid).EventsSent > 0 })
	p2 := e.startWebhookd(flags...)
	api2 := p2.apiURL(t)
	waitFor(t, 60*time.Second, strconv.Itoa(killAfter)+" events replayed", func() bool { return e.replay(w.ID, rid).EventsSent >= killAfter })
	p1.signal(syscall.SIGKILL)
	<-p1.done

	// What p1 recorded last is what p2 resumes from.
	atKill := e.replay(w.ID, rid)
	if atKill.State != subscriptions.ReplayRunning || atKill.EventsSent >= window || atKill.Checkpoint == 0 {
		t.Fatalf("replay when its replica was killed: %+v; want running with a checkpoint, mid-window (the test did not kill it mid-way)", atKill)
	}
	t.Logf("killed the replay's replica at checkpoint %d, %d events sent", atKill.Checkpoint, atKill.EventsSent)

	waitFor(t, 120*time.Second, "the replay resumed and ended", func() bool { return e.replay(w.ID, rid).State != subscriptions.ReplayRunning })
	st := replayState(t, api2, w.ID, rid)
	liveIDs := stopLive()
	if st["state"] != "done" || st["finished_at"] == nil {
		t.Fatalf("replay ended %v, want done with finished_at", st)
	}
	if found, sent := st["events_found"].(float64), st["events_sent"].(float64); found != window || sent != window {
		t.Errorf("events_found %v, events_sent %v; want %d each (resumed after the checkpoint, nothing counted twice)", found, sent, window)
	}

	// Every replayed event arrived again; duplicates are what p1 sent
	// past its checkpoint.
	got := sink.Delivered()
	replayed := make(map[string]int, window)
	for _, id := range ids {
		replayed[id] = got[id] - live[id]
	}
	tl := count(ids, replayed)
	tl.log(t, "replay resumed after a crash")
	if tl.duplicated > batch {
		t.Errorf("%d events replayed twice, want at most one batch (%d): the replay did not resume from its checkpoint", tl.duplicated, batch)
	}
	waitDelivered(t, sink, liveIDs, 60*time.Second)
	t.Logf("receiver peak: %d requests at once", sink.Peak())
	if p := sink.Peak(); p > maxInFlight {
		t.Errorf("receiver saw %d requests at once, want at most --max-in-flight %d", p, maxInFlight)
	}
	if out := p2.out.String(); !strings.Contains(out, `"replay_id":"`+rid+`"`) {
		t.Errorf("the surviving replica logged nothing of replay %s; want its replay finished line", rid)
	}
}

// replay is webhook id's replay rid as stored now.
func (e *env) replay(id, rid string) subscriptions.Replay {
	e.t.Helper()
	r, err := e.store.GetReplay(context.Background(), id, rid)
	if err != nil {
		e.t.Fatalf("GetReplay: %v", err)
	}
	return r
}

// A replay's replica stopped gracefully (SIGTERM) mid-window gives its
// lease up on the way out: the replay, still running with its
// checkpoint, can be claimed at once by another replica, which resumes
// it. Before, the lease was left to expire (15 s) first.
func TestReplayReleasedOnGracefulStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	flags := []string{"--api-key", testKey + "=default", "--batch-max-events", "20", "--max-in-flight", "2"}
	p1 := e.startWebhookd(flags...)
	sink := NewSink(t, testSecret)
	sink.Respond = func(int64, *Request) int {
		time.Sleep(50 * time.Millisecond)
		return http.StatusOK
	}
	w := e.create("default", sink.URL, topicSMS)
	since := time.Now()
	ids := e.publish(topicSMS, "ev", 2000)
	waitDelivered(t, sink, ids, 60*time.Second)
	e.waitIdle(w.ID)

	rid := startReplay(t, p1.apiURL(t), w.ID, since)
	waitFor(t, 60*time.Second, "200 events replayed", func() bool { return e.replay(w.ID, rid).EventsSent >= 200 })
	p1.signal(syscall.SIGTERM)
	<-p1.done
	if st := e.replay(w.ID, rid); st.State != subscriptions.ReplayRunning || st.EventsSent >= 2000 {
		t.Fatalf("replay when its replica stopped: %+v; want running, mid-window", st)
	}
	held, running, err := e.store.ClaimReplay(context.Background(), w.ID, rid, "probe", time.Millisecond)
	if err != nil || !held || !running {
		t.Fatalf("ClaimReplay right after the replica stopped = %v, %v, %v; want the lease free (released on the way out)", held, running, err)
	}
	p2 := e.startWebhookd(flags...)
	waitFor(t, 60*time.Second, "the replay resumed and done", func() bool { return e.replay(w.ID, rid).State == subscriptions.ReplayDone })
	if st := replayState(t, p2.apiURL(t), w.ID, rid); st["events_sent"].(float64) != 2000 {
		t.Errorf("events_sent %v, want 2000", st["events_sent"])
	}
}
