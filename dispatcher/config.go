package dispatcher

import (
	"time"

	"github.com/webhookd/webhookd/batcher"
	"github.com/webhookd/webhookd/dispatcher/activity"
)

// Config configures a Dispatcher. Zero fields take the defaults shown.
type Config struct {
	Stream         string        // JetStream stream name ("EVENTS")
	Subjects       []string      // stream subjects ([DefaultSubject])
	StreamMaxAge   time.Duration // retention (72h, and always > DisableAfter + 24h)
	Replicas       int           // stream replicas (1; 3 in a NATS cluster)
	DeadLetter     string        // dead-letter subject prefix ("webhookd.deadletter")
	DefaultAccount string        // account of events on a bare topic subject ("default")

	DeliveryTimeout time.Duration // whole-request deadline (5s)
	MaxInFlight     int           // requests in flight per webhook across replicas (10)
	BatchMaxEvents  int           // events per request (1000)
	BatchMaxBytes   int           // body size cap per request (batcher.DefaultMaxBytes, 4 MiB)
	BatchLinger     time.Duration // how long a partial batch waits for more events (200ms)
	BackoffBase     time.Duration // first retry delay (1s)
	BackoffMax      time.Duration // retry delay cap (1h)
	DisableAfter    time.Duration // continuous error before disabling (48h)
	Lease           time.Duration // semaphore lease (30s; at least MinLease)

	// MaxBufferedBytes bounds the bytes of fetched events this replica
	// holds at once, across every webhook (256 MiB). Each webhook holds at
	// most MaxInFlight batches of about BatchMaxBytes each; past the total,
	// fetches wait for deliveries to finish.
	MaxBufferedBytes int64

	// Partitions selects partitioned consumption with that many
	// partitions (16 is the measured sweet spot for up to a handful of
	// replicas; README, Operations); 0 keeps one consumer per webhook.
	// It is fixed for the life of a stream: changing it remaps only new
	// events.
	Partitions int

	// ReconcileInterval is how often each replica checks the registry
	// revision (500ms): changes reach every replica within about that.
	ReconcileInterval time.Duration

	// AdoptRegistry accepts the registry found in Redis as this
	// deployment's even when it is not the one recorded in the event
	// stream (after a deliberate replacement). Without it a replaced or
	// emptied registry is refused: no consumer is created or deleted.
	AdoptRegistry bool

	AllowInsecureEndpoints bool   // permit loopback/private targets (tests, local development)
	UserAgent              string // User-Agent header ("webhookd")

	Observer Observer // told about every request, for metrics (none)

	// OpsURL, when set, receives every operator event (ops.go) as a
	// POST signed like deliveries with OpsSecret; none by default.
	OpsURL    string
	OpsSecret string

	// Activity receives one record per request sent, for the attempt log
	// (activity.Discard when nil). It must not block.
	Activity activity.Recorder
}

// DefaultMaxBufferedBytes is Config.MaxBufferedBytes's default: 64
// batches of the default 4 MiB, far above what a replica needs to keep
// its cores busy, far below what would pressure a small VM.
const DefaultMaxBufferedBytes = 256 << 20

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Stream == "" {
		c.Stream = "EVENTS"
	}
	if len(c.Subjects) == 0 {
		c.Subjects = []string{DefaultSubject}
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.DeadLetter == "" {
		c.DeadLetter = "webhookd.deadletter"
	}
	if c.DefaultAccount == "" {
		c.DefaultAccount = "default"
	}
	def(&c.DeliveryTimeout, 5*time.Second)
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 10
	}
	if c.BatchMaxEvents <= 0 {
		c.BatchMaxEvents = batcher.DefaultMaxEvents
	}
	if c.BatchMaxBytes <= 0 {
		c.BatchMaxBytes = batcher.DefaultMaxBytes
	}
	if c.MaxBufferedBytes <= 0 {
		c.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	def(&c.BatchLinger, 200*time.Millisecond)
	def(&c.BackoffBase, time.Second)
	def(&c.BackoffMax, time.Hour)
	def(&c.DisableAfter, 48*time.Hour)
	def(&c.Lease, 30*time.Second)
	def(&c.StreamMaxAge, 72*time.Hour)
	if c.StreamMaxAge < c.DisableAfter+24*time.Hour {
		c.StreamMaxAge = c.DisableAfter + 24*time.Hour
	}
	def(&c.ReconcileInterval, 500*time.Millisecond)
	if c.Activity == nil {
		c.Activity = activity.Discard{}
	}
	if c.UserAgent == "" {
		c.UserAgent = "webhookd"
	}
	return c
}

// MinLease is the shortest semaphore lease that outlives what a slot
// covers: the linger and up to two request deadlines, plus a second of
// margin. A shorter lease could expire while its request is in flight and
// let more than MaxInFlight run.
func MinLease(deliveryTimeout, linger time.Duration) time.Duration {
	return 2*deliveryTimeout + linger + time.Second
}

// ackWait is how long a fetched message may stay unacknowledged before
// JetStream redelivers it: a crashed replica's batches come back after
// it (20.4 s with the defaults). It covers the linger, the request and the
// acks with a wide margin; longer holds (waiting for a slot, or a batch
// split into several requests) refresh it with InProgress every
// ackWait/3.
func (c Config) ackWait() time.Duration {
	return 2*(c.DeliveryTimeout+c.BatchLinger) + 10*time.Second
}

// batchConfig is the batcher's view of the caps.
func (c Config) batchConfig() batcher.Config {
	return batcher.Config{MaxEvents: c.BatchMaxEvents, MaxBytes: c.BatchMaxBytes}
}
