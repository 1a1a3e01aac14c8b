// Package flows delivers flow webhooks: for every event on the event
// stream that triggers a live send-webhook action of a live flow, one
// POST whose JSON body is the action's template rendered over the event
// and its profile.
//
// Consumption costs the server the same whatever the number of flows:
// one durable consumer, "flows", on the event stream, pulled by every
// replica (JetStream spreads its messages over the pullers), and one
// work-queue stream of retries with its one consumer. Each replica keeps
// an in-memory index of live actions by (account, trigger), reloaded when
// the flow store's revision changes, so an event that triggers nothing
// costs one map lookup. Events need no order here (each POST stands
// alone), which is why a single shared consumer suffices; see the
// README's "Flow webhooks" for its throughput.
package flows

import (
	"time"

	"github.com/webhookd/webhookd/batcher/flowtmpl"
	"github.com/webhookd/webhookd/dispatcher/activity"
)

// Config configures flow delivery. Zero fields take the defaults shown.
type Config struct {
	Stream         string // the event stream ("EVENTS")
	DefaultAccount string // account of events on a bare topic ("default")
	// AllowInsecureEndpoints: http and private addresses allowed (false).
	AllowInsecureEndpoints bool
	// DeliveryTimeout is one request's whole deadline (10s). Flow
	// webhooks call third-party APIs, slower than a webhook receiver.
	DeliveryTimeout time.Duration
	// MaxInFlight caps requests in flight per action across replicas (10).
	MaxInFlight int
	// Lease is how long a crashed replica's request slot stays taken
	// (30s; more than DeliveryTimeout).
	Lease time.Duration
	// Workers bounds the events one replica processes at once (64).
	Workers int
	// RetryBase scales the retry schedule (30s): the n-th retry waits
	// RetryBase × retryFactors[n-1], 17 retries within 24 h at 30s.
	// Tests shrink it.
	RetryBase time.Duration
	// IndexPoll is how often the flow store's revision is read (500ms).
	IndexPoll time.Duration
	// UserAgent is the requests' User-Agent ("webhookd").
	UserAgent string
	// Limits are the body templates' budgets (flowtmpl's defaults).
	Limits flowtmpl.Limits
	// Organization gives an account's organization context; nil: the
	// account id as name, no url.
	Organization func(account string) flowtmpl.Organization
	// Activity receives every request, and every event skipped without
	// one (render_error, action_not_live) (activity.Discard).
	Activity activity.Recorder
	// Replicas is the retry stream's replica count (1).
	Replicas int
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Stream == "" {
		c.Stream = "EVENTS"
	}
	if c.DefaultAccount == "" {
		c.DefaultAccount = "default"
	}
	def(&c.DeliveryTimeout, 10*time.Second)
	def(&c.Lease, 30*time.Second)
	if c.Lease < c.DeliveryTimeout+5*time.Second {
		c.Lease = c.DeliveryTimeout + 5*time.Second
	}
	def(&c.RetryBase, 30*time.Second)
	def(&c.IndexPoll, 500*time.Millisecond)
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 10
	}
	if c.Workers <= 0 {
		c.Workers = 64
	}
	if c.UserAgent == "" {
		c.UserAgent = "webhookd"
	}
	if c.Organization == nil {
		c.Organization = func(account string) flowtmpl.Organization { return flowtmpl.Organization{Name: account} }
	}
	if c.Activity == nil {
		c.Activity = activity.Discard{}
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	return c
}

// The JetStream names of flow delivery.
func (c Config) consumerName() string { return "flows" }
func (c Config) retryStream() string  { return c.Stream + "_FLOWS_RETRY" }

const (
	retrySubjectPrefix = "webhookd.flowretry"
	retryConsumerName  = "flows_retry"
)
