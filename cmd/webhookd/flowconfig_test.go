package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestFlowFlags(t *testing.T) {
	cfg, err := parseServeConfig([]string{"--flow-max-in-flight", "3", "--flow-retry-base", "1s",
		"--organization", "acme=Acme Inc|https://acme.example", "--organization", "solo=Solo"}, env(nil), io.Discard)
	if err != nil {
		t.Fatalf("parseServeConfig() = %v", err)
	}
	fc := cfg.flowConfig()
	if fc.MaxInFlight != 3 || fc.RetryBase != time.Second || fc.DeliveryTimeout != 10*time.Second {
		t.Errorf("flowConfig() = %+v", fc)
	}
	if o := fc.Organization("acme"); o.Name != "Acme Inc" || o.URL != "https://acme.example" {
		t.Errorf("Organization(acme) = %+v", o)
	}
	if o := fc.Organization("solo"); o.Name != "Solo" || o.URL != "" {
		t.Errorf("Organization(solo) = %+v", o)
	}
	if o := fc.Organization("other"); o.Name != "other" {
		t.Errorf("Organization(other) = %+v, want the account id as name", o)
	}
	for _, args := range [][]string{{"--flow-max-in-flight", "0"}, {"--flow-retry-base", "0s"}, {"--organization", "no-equals"}} {
		_, err := parseServeConfig(args, env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "--")) {
			t.Errorf("parseServeConfig(%v) = %v, want an error naming the flag", args, err)
		}
	}
}
