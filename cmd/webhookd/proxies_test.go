package main

import (
	"io"
	"strings"
	"testing"
)

// --trusted-proxies takes a comma list of CIDRs and addresses, from the
// flag or its twin WEBHOOKD_TRUSTED_PROXIES (the flag wins); it is
// empty by default.
func TestTrustedProxiesFlag(t *testing.T) {
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{name: "default: none", want: ""},
		{name: "flag", args: []string{"--trusted-proxies", "10.0.0.0/8, 192.0.2.7,fd00::/8"},
			want: "10.0.0.0/8,192.0.2.7/32,fd00::/8"},
		{name: "env twin", vars: map[string]string{"WEBHOOKD_TRUSTED_PROXIES": "172.16.0.0/12,::1"},
			want: "172.16.0.0/12,::1/128"},
		{name: "flag wins", args: []string{"--trusted-proxies", "10.0.0.1"},
			vars: map[string]string{"WEBHOOKD_TRUSTED_PROXIES": "172.16.0.0/12"}, want: "10.0.0.1/32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseServeConfig(tt.args, env(tt.vars), io.Discard)
			if err != nil {
				t.Fatalf("parseServeConfig(%q) = %v", tt.args, err)
			}
			if got := cfg.TrustedProxies.String(); got != tt.want {
				t.Errorf("TrustedProxies = %q, want %q", got, tt.want)
			}
		})
	}
}

// A bad entry stops start-up with an error naming the flag (or its
// twin) and the entry.
func TestTrustedProxiesInvalid(t *testing.T) {
	_, err := parseServeConfig([]string{"--trusted-proxies", "10.0.0.0/8,proxy.internal"}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "trusted-proxies") || !strings.Contains(err.Error(), `"proxy.internal": want an IP address`) {
		t.Errorf("parseServeConfig(--trusted-proxies 10.0.0.0/8,proxy.internal) = %v, want an error naming the flag and the entry", err)
	}
	_, err = parseServeConfig(nil, env(map[string]string{"WEBHOOKD_TRUSTED_PROXIES": "10.0.0.0/33"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "WEBHOOKD_TRUSTED_PROXIES") || !strings.Contains(err.Error(), `"10.0.0.0/33": want a CIDR`) {
		t.Errorf("parseServeConfig(WEBHOOKD_TRUSTED_PROXIES=10.0.0.0/33) = %v, want an error naming the variable and the entry", err)
	}
}
