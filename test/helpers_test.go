package test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/test/harness"
)

func subscriptionsPatchTopics(topics []string) subscriptions.Patch {
	return subscriptions.Patch{Topics: &topics}
}

func itoa(i int) string { return strconv.Itoa(i) }

func jsMsgID(id string) jetstream.PublishOpt { return jetstream.WithMsgID(id) }

func storeFor(t testing.TB, r *harness.Redis) *subscriptions.Store {
	return subscriptions.New(r.Client(t), subscriptions.Config{})
}

// portOf returns the port of a nats://host:port URL.
func portOf(u string) int {
	i := strings.LastIndexByte(u, ':')
	p, _ := strconv.Atoi(u[i+1:])
	return p
}
