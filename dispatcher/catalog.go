package dispatcher

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// catalogInterval is how often the stream's subjects are listed to grow
// the per-account topic catalogs.
const catalogInterval = 5 * time.Second

// topicCatalog is where topics seen on the stream are recorded.
type topicCatalog interface {
	AddTopics(ctx context.Context, account string, topics ...string) error
}

// catalog adds every topic seen on the stream to its account's topic
// catalog, so webhooks can subscribe to topics beyond the built-in
// Klaviyo ones as soon as producers use them. It returns nil once ctx is
// done.
func catalog(ctx context.Context, cfg Config, st *streams, cat topicCatalog, log zerolog.Logger) error {
	seen := make(map[string]bool)
	t := time.NewTicker(catalogInterval)
	defer t.Stop()
	for {
		scanSubjects(ctx, cfg, st.js, cat, log, seen)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func scanSubjects(ctx context.Context, cfg Config, js jetstream.JetStream, cat topicCatalog, log zerolog.Logger, seen map[string]bool) {
	st, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return
	}
	for _, filter := range cfg.Subjects {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			return
		}
		for subj := range info.State.Subjects {
			if seen[subj] {
				continue
			}
			topic, account, err := ParseSubject(subj, cfg.DefaultAccount)
			if err != nil || !validAccount(account) {
				log.Warn().Str("subject", subj).Msg("events on a subject that is not <topic> or <topic>.<account>: no webhook can receive them")
				seen[subj] = true
				continue
			}
			if err := cat.AddTopics(ctx, account, topic); err != nil {
				return // Redis away; next round
			}
			seen[subj] = true
		}
	}
}

// topicBatcher records topics of several accounts in one round trip
// (*subscriptions.Store implements it).
type topicBatcher interface {
	AddTopicsMany(ctx context.Context, byAccount map[string][]string) error
}

// topicNoter adds topics seen on partitions to their account's catalog,
// once per subject per replica, off the fetch loop. Traffic over many
// new subjects is written in pipelines of up to noteBatch, not a round
// trip each, and an event on a known subject costs one map lookup
// (keyed by its subject: no allocation).
type topicNoter struct {
	cat  topicCatalog
	log  zerolog.Logger
	work chan topicNote

	mu   sync.RWMutex
	seen map[string]struct{} // subjects whose topic is recorded or on its way
}

type topicNote struct{ subject, account, topic string }

const (
	noteBatch = 1000
	// maxNoted bounds the subjects remembered: past it they are forgotten
	// and written again (SADD is idempotent).
	maxNoted = 1 << 20
)

func newTopicNoter(cat topicCatalog, log zerolog.Logger) *topicNoter {
	return &topicNoter{cat: cat, log: log, work: make(chan topicNote, 4096), seen: make(map[string]struct{})}
}

// note records that an event came on subject (topic of account).
func (t *topicNoter) note(subject, account, topic string) {
	t.mu.RLock()
	_, ok := t.seen[subject]
	t.mu.RUnlock()
	if ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.seen[subject]; ok {
		return
	}
	// The strings point into the event's buffer: copies, so the map does
	// not keep whole events alive.
	n := topicNote{subject: strings.Clone(subject), account: strings.Clone(account), topic: strings.Clone(topic)}
	select {
	case t.work <- n:
		if len(t.seen) >= maxNoted {
			clear(t.seen)
		}
		t.seen[n.subject] = struct{}{}
	default: // busy: noted again with a later event
	}
}

// Run records noted topics until ctx is done.
func (t *topicNoter) Run(ctx context.Context) error {
	batch := make([]topicNote, 0, noteBatch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-t.work:
			batch = append(batch[:0], n)
		}
	fill:
		for len(batch) < noteBatch {
			select {
			case n := <-t.work:
				batch = append(batch, n)
			default:
				break fill
			}
		}
		if err := t.record(ctx, batch); err != nil {
			t.mu.Lock()
			for _, n := range batch {
				delete(t.seen, n.subject) // Redis away: again with a later event
			}
			t.mu.Unlock()
		}
	}
}

// record writes batch to the catalog, in one pipeline if it can.
func (t *topicNoter) record(ctx context.Context, batch []topicNote) error {
	if b, ok := t.cat.(topicBatcher); ok {
		by := make(map[string][]string)
		for _, n := range batch {
			by[n.account] = append(by[n.account], n.topic)
		}
		return b.AddTopicsMany(ctx, by)
	}
	var errs []error
	for _, n := range batch {
		errs = append(errs, t.cat.AddTopics(ctx, n.account, n.topic))
	}
	return errors.Join(errs...)
}
