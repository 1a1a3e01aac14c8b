package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/webhookd/webhookd/batcher/flowtmpl"
	dflows "github.com/webhookd/webhookd/dispatcher/flows"
	"github.com/webhookd/webhookd/subscriptions"
)

// FlowFlags are the flags of flow webhook delivery.
type FlowFlags struct {
	FlowMaxInFlight     int
	FlowDeliveryTimeout time.Duration
	FlowRetryBase       time.Duration
	Organizations       []string // ACCOUNT=NAME|URL entries
}

func (f *FlowFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.FlowMaxInFlight, "flow-max-in-flight", 10, "concurrent requests per flow webhook action across replicas, 1-1000")
	fs.DurationVar(&f.FlowDeliveryTimeout, "flow-delivery-timeout", 10*time.Second, "whole-request `deadline` of a flow webhook request")
	fs.DurationVar(&f.FlowRetryBase, "flow-retry-base", 30*time.Second, "unit of the flow webhook retry schedule: 17 retries at 1,2,4,…,120,280×9 units (30s: within 24h; README, Flow webhooks)")
	fs.Var((*stringList)(&f.Organizations), "organization", "an account's organization for flow templates as `ACCOUNT=NAME|URL` (URL optional), repeatable; default: the account id as name")
}

// check validates the flow flags with serveConfig.validate's helpers.
func (f *FlowFlags) check(bad func(name, value, format string, a ...any)) {
	if f.FlowMaxInFlight < 1 || f.FlowMaxInFlight > maxInFlightLimit {
		bad("flow-max-in-flight", strconv.Itoa(f.FlowMaxInFlight), "must be between 1 and %d", maxInFlightLimit)
	}
	if f.FlowDeliveryTimeout <= 0 {
		bad("flow-delivery-timeout", f.FlowDeliveryTimeout.String(), "must be positive")
	}
	if f.FlowRetryBase <= 0 {
		bad("flow-retry-base", f.FlowRetryBase.String(), "must be positive")
	}
	if _, err := f.organizations(); err != nil {
		bad("organization", strings.Join(f.Organizations, ","), "%v", err)
	}
}

func (f *FlowFlags) organizations() (map[string]flowtmpl.Organization, error) {
	out := map[string]flowtmpl.Organization{}
	for _, e := range f.Organizations {
		account, rest, ok := strings.Cut(e, "=")
		if !ok || subscriptions.ValidateAccountID(account) != nil {
			return nil, fmt.Errorf("%q: want ACCOUNT=NAME|URL", e)
		}
		name, url, _ := strings.Cut(rest, "|")
		out[account] = flowtmpl.Organization{Name: name, URL: url}
	}
	return out, nil
}

// flowConfig is flow delivery's configuration.
func (c *serveConfig) flowConfig() dflows.Config {
	orgs, _ := c.organizations() // validated
	return dflows.Config{
		DefaultAccount:         c.DefaultAccount,
		AllowInsecureEndpoints: c.AllowInsecureEndpoints,
		DeliveryTimeout:        c.FlowDeliveryTimeout,
		MaxInFlight:            c.FlowMaxInFlight,
		RetryBase:              c.FlowRetryBase,
		UserAgent:              "webhookd/" + version,
		Replicas:               c.StreamReplicas,
		Organization: func(account string) flowtmpl.Organization {
			if o, ok := orgs[account]; ok {
				return o
			}
			return flowtmpl.Organization{Name: account}
		},
	}
}
