package subscriptions

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestIsPublicAddr(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"93.184.216.34", true},
		{"2606:4700:4700::1111", true},
		{"2a00:1450:4001:82b::200e", true},
		{"::ffff:8.8.8.8", true},
		{"100.63.255.255", true},
		{"100.128.0.0", true},
		{"198.20.0.1", true},
		{"2001:200::1", true},     // just past 2001::/23
		{"2620:4f:8000::1", true}, // AS112 direct delegation, globally reachable
		{"192.31.196.1", true},    // AS112-v4, globally reachable

		{"127.0.0.1", false},           // loopback
		{"127.255.255.254", false},     // loopback
		{"::1", false},                 // loopback
		{"10.0.0.1", false},            // RFC 1918
		{"172.16.5.4", false},          // RFC 1918
		{"172.31.255.255", false},      // RFC 1918
		{"192.168.1.1", false},         // RFC 1918
		{"fc00::1", false},             // ULA
		{"fd12:3456::1", false},        // ULA
		{"169.254.169.254", false},     // link-local, cloud metadata
		{"169.254.0.1", false},         // link-local
		{"fe80::1", false},             // link-local
		{"fe80::1%eth0", false},        // link-local with zone
		{"0.0.0.0", false},             // unspecified
		{"::", false},                  // unspecified
		{"0.1.2.3", false},             // this network
		{"224.0.0.1", false},           // multicast
		{"239.255.255.250", false},     // multicast
		{"ff02::1", false},             // multicast
		{"ff05::2", false},             // multicast
		{"100.64.0.1", false},          // CGNAT
		{"100.127.255.254", false},     // CGNAT
		{"192.0.0.1", false},           // IETF protocol assignments
		{"192.0.2.10", false},          // TEST-NET-1
		{"198.18.0.1", false},          // benchmarking
		{"198.19.255.255", false},      // benchmarking
		{"198.51.100.7", false},        // TEST-NET-2
		{"203.0.113.9", false},         // TEST-NET-3
		{"240.0.0.1", false},           // reserved
		{"255.255.255.255", false},     // broadcast
		{"64:ff9b::a00:1", false},      // NAT64 of 10.0.0.1
		{"64:ff9b::808:808", false},    // NAT64 even of a public address
		{"64:ff9b:1::1", false},        // local-use NAT64
		{"2002:a00:1::1", false},       // 6to4
		{"2001:db8::1", false},         // documentation
		{"2001:0:4136:e378::1", false}, // Teredo
		{"::7f00:1", false},            // IPv4-compatible 127.0.0.1
		{"fec0::1", false},             // site-local
		{"::ffff:0:7f00:1", false},     // IPv4-translated 127.0.0.1 (issue 13)
		{"::ffff:0:a9fe:a9fe", false},  // IPv4-translated 169.254.169.254
		{"::ffff:0:808:808", false},    // IPv4-translated even of a public address
		{"100::1", false},              // discard-only
		{"100:0:0:1::1", false},        // dummy prefix
		{"2001:2::1", false},           // benchmarking
		{"2001:20::1", false},          // ORCHIDv2
		{"2001:1ff:ffff::1", false},    // end of 2001::/23
		{"3fff::1", false},             // documentation (RFC 9637)
		{"5f00::1", false},             // SRv6 SIDs
		{"1::1", false},                // reserved, outside 2000::/3
		{"4000::1", false},             // reserved, outside 2000::/3
		{"e000::1", false},             // reserved, outside 2000::/3
		{"::ffff:169.254.169.254", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:100.64.0.1", false},
		{"::ffff:192.0.2.1", false},
		{"::ffff:255.255.255.255", false},
		{"::ffff:0.0.0.0", false},
		{"::ffff:224.0.0.1", false},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.in)
		if got := IsPublicAddr(ip); got != tt.want {
			t.Errorf("IsPublicAddr(%s) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if IsPublicAddr(netip.Addr{}) {
		t.Errorf("IsPublicAddr(zero Addr) = true, want false")
	}
}

func TestValidateEndpoint(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("a", MaxEndpointLen)
	tests := []struct {
		in       string
		secure   error // allowInsecure = false
		insecure error // allowInsecure = true
	}{
		{"https://example.com/hook", nil, nil},
		{"https://Example.COM:8443/a/b?x=1#f", nil, nil},
		{"HTTPS://example.com", nil, nil},
		{"https://example.com.", nil, nil},
		{"https://under_score.example.com", nil, nil},
		{"https://8.8.8.8/x", nil, nil},
		{"https://[2606:4700:4700::1111]/x", nil, nil},
		{"https://xn--bcher-kva.example/", nil, nil},

		{"http://example.com/hook", ErrEndpointScheme, nil},
		{"ftp://example.com/", ErrEndpointScheme, ErrEndpointScheme},
		{"javascript://example.com/", ErrEndpointScheme, ErrEndpointScheme},
		{"https://user:pass@example.com/", ErrEndpointUserinfo, ErrEndpointUserinfo},
		{"https://user@example.com/", ErrEndpointUserinfo, ErrEndpointUserinfo},
		{"http://user:pass@127.0.0.1/", ErrEndpointScheme, ErrEndpointUserinfo},
		{"https:///path", ErrEndpointHost, ErrEndpointHost},
		{"https://:443/path", ErrEndpointHost, ErrEndpointHost},
		{"https:example.com", ErrEndpointHost, ErrEndpointHost},
		{"https://exa mple.com/", ErrEndpointInvalid, ErrEndpointInvalid},
		{"https://-bad.example.com/", ErrEndpointHost, ErrEndpointHost},
		{"https://a..b/", ErrEndpointHost, ErrEndpointHost},
		{"https://example.com:0/", ErrEndpointHost, ErrEndpointHost},
		{"https://example.com:70000/", ErrEndpointHost, ErrEndpointHost},
		{"https://127.1/", ErrEndpointHost, ErrEndpointHost},
		{"https://2130706433/", ErrEndpointHost, ErrEndpointHost},
		{"https://0x7f.0x1/", ErrEndpointHost, ErrEndpointHost},
		{"/relative/path", ErrEndpointInvalid, ErrEndpointInvalid},
		{"", ErrEndpointInvalid, ErrEndpointInvalid},
		{"://x", ErrEndpointInvalid, ErrEndpointInvalid},

		{"https://localhost/", ErrEndpointPrivate, nil},
		{"https://LOCALHOST./", ErrEndpointPrivate, nil},
		{"https://api.localhost:8080/", ErrEndpointPrivate, nil},
		{"https://127.0.0.1:8443/", ErrEndpointPrivate, nil},
		{"http://127.0.0.1:8080/sink", ErrEndpointScheme, nil},
		{"https://10.1.2.3/", ErrEndpointPrivate, nil},
		{"https://169.254.169.254/latest/meta-data", ErrEndpointPrivate, nil},
		{"https://100.64.1.1/", ErrEndpointPrivate, nil},
		{"https://[::1]/", ErrEndpointPrivate, nil},
		{"https://[::ffff:169.254.169.254]/", ErrEndpointPrivate, nil},
		{"https://[::ffff:10.0.0.1]/", ErrEndpointPrivate, nil},
		{"https://[fe80::1%25eth0]/", ErrEndpointPrivate, nil},
		{"https://0.0.0.0/", ErrEndpointPrivate, nil},
		{"https://[::ffff:0:7f00:1]/", ErrEndpointPrivate, nil},
		{"https://[::ffff:0:a9fe:a9fe]/latest/meta-data", ErrEndpointPrivate, nil},
		{"https://[64:ff9b::7f00:1]/", ErrEndpointPrivate, nil},
		{"https://[100::1]/", ErrEndpointPrivate, nil},
		{"https://[3fff::1]/", ErrEndpointPrivate, nil},

		{long, ErrEndpointTooLong, ErrEndpointTooLong},
	}
	for _, tt := range tests {
		for _, c := range []struct {
			insecure bool
			want     error
		}{{false, tt.secure}, {true, tt.insecure}} {
			got := ValidateEndpoint(tt.in, c.insecure)
			if !errors.Is(got, c.want) || (c.want == nil) != (got == nil) {
				in := tt.in
				if len(in) > 60 {
					in = in[:60] + "…"
				}
				t.Errorf("ValidateEndpoint(%q, %v) = %v, want %v", in, c.insecure, got, c.want)
			}
		}
	}
	if err := ValidateEndpoint("https://example.com/"+strings.Repeat("a", MaxEndpointLen-len("https://example.com/")), false); err != nil {
		t.Errorf("ValidateEndpoint(exactly %d bytes) = %v, want nil", MaxEndpointLen, err)
	}
}

func FuzzValidateEndpoint(f *testing.F) {
	for _, s := range []string{"https://example.com/x", "http://127.0.0.1:8080", "https://[::ffff:10.0.0.1]/", "https://u@h/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if ValidateEndpoint(raw, false) == nil {
			if ValidateEndpoint(raw, true) != nil {
				t.Errorf("ValidateEndpoint(%q): accepted strictly but rejected with allowInsecure", raw)
			}
			if !strings.HasPrefix(strings.ToLower(raw), "https://") {
				t.Errorf("ValidateEndpoint(%q, false) = nil for a non-https URL", raw)
			}
		}
	})
}
