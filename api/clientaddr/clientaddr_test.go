package clientaddr

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func mustParse(tb testing.TB, items ...string) Proxies {
	tb.Helper()
	p, err := Parse(items)
	if err != nil {
		tb.Fatalf("Parse(%q) = %v", items, err)
	}
	return p
}

func TestClient(t *testing.T) {
	proxies := mustParse(t, "10.0.0.0/8", "192.0.2.7", "fd00::/8", "::1")
	tests := []struct {
		name    string
		none    bool // no proxies configured
		peer    string
		xff     []string // header lines, in order
		want    string
		wantErr error
	}{
		{name: "no proxies configured: XFF ignored", none: true, peer: "10.1.1.1:5000",
			xff: []string{"203.0.113.9"}, want: "10.1.1.1"},
		{name: "spoofed XFF from an untrusted peer ignored", peer: "198.51.100.4:5000",
			xff: []string{"203.0.113.9, 10.0.0.1"}, want: "198.51.100.4"},
		{name: "trusted peer without XFF is the client", peer: "10.0.0.5:5000", want: "10.0.0.5"},
		{name: "trusted peer, one hop", peer: "10.0.0.5:5000", xff: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "client's own XFF entry left of the real one ignored", peer: "10.0.0.5:5000",
			xff: []string{"1.2.3.4, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "trusted chain skipped from the right", peer: "10.0.0.5:5000",
			xff: []string{"6.6.6.6, 203.0.113.9, 192.0.2.7, 10.9.9.9"}, want: "203.0.113.9"},
		{name: "several header lines read as one list", peer: "10.0.0.5:5000",
			xff: []string{"6.6.6.6, 203.0.113.9", "10.9.9.9"}, want: "203.0.113.9"},
		{name: "empty header line adds no hop", peer: "10.0.0.5:5000",
			xff: []string{"203.0.113.9", " "}, want: "203.0.113.9"},
		{name: "every hop trusted: the left-most", peer: "10.0.0.5:5000",
			xff: []string{"10.3.3.3, 192.0.2.7, 10.9.9.9"}, want: "10.3.3.3"},
		{name: "IPv6 peer and client", peer: "[fd00::1]:443",
			xff: []string{"2001:db8:1:2::9, fd12::7"}, want: "2001:db8:1:2::9"},
		{name: "IPv6 loopback proxy, IPv4 client", peer: "[::1]:443", xff: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "IPv4-mapped peer and entries compare as IPv4", peer: "[::ffff:10.0.0.5]:443",
			xff: []string{"::ffff:203.0.113.9"}, want: "203.0.113.9"},
		{name: "entries with ports", peer: "10.0.0.5:5000",
			xff: []string{"[2001:db8::9]:1234, 10.1.1.1:80"}, want: "2001:db8::9"},
		{name: "zone dropped", peer: "10.0.0.5:5000", xff: []string{"fe80::1%eth0"}, want: "fe80::1"},
		{name: "garbage where the client should be: the peer", peer: "10.0.0.5:5000",
			xff: []string{"203.0.113.9, not-an-ip"}, want: "10.0.0.5", wantErr: ErrBadForwarded},
		{name: "garbage behind a trusted hop: the peer", peer: "10.0.0.5:5000",
			xff: []string{"unknown, 10.1.1.1"}, want: "10.0.0.5", wantErr: ErrBadForwarded},
		{name: "empty entry: the peer", peer: "10.0.0.5:5000",
			xff: []string{"203.0.113.9,,10.1.1.1"}, want: "10.0.0.5", wantErr: ErrBadForwarded},
		{name: "a CIDR is not an address", peer: "10.0.0.5:5000",
			xff: []string{"203.0.113.0/24"}, want: "10.0.0.5", wantErr: ErrBadForwarded},
		{name: "garbage left of the client never read", peer: "10.0.0.5:5000",
			xff: []string{"<script>, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "garbage from an untrusted peer ignored", peer: "198.51.100.4:5000",
			xff: []string{"garbage"}, want: "198.51.100.4"},
		{name: "bare peer address", peer: "10.0.0.5", xff: []string{"203.0.113.9"}, want: "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			p := proxies
			if tt.none {
				p = nil
			}
			got, err := p.Client(r)
			if !errors.Is(err, tt.wantErr) || got.String() != tt.want {
				t.Errorf("Client(peer %s, XFF %q) = %v, %v; want %s, %v", tt.peer, tt.xff, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestClientNoPeer(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "@"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	if got, err := mustParse(t, "0.0.0.0/0").Client(r); !errors.Is(err, ErrNoPeer) || got.IsValid() {
		t.Errorf("Client(peer @) = %v, %v; want no address, ErrNoPeer", got, err)
	}
}

func TestParse(t *testing.T) {
	p := mustParse(t, " 10.1.2.3/8", "192.0.2.7", "2001:db8::1", "fd00::/8 ")
	if got, want := p.String(), "10.0.0.0/8,192.0.2.7/32,2001:db8::1/128,fd00::/8"; got != want {
		t.Errorf("Parse(...).String() = %q, want %q", got, want)
	}
	for _, bad := range []string{"", "bogus", "10.0.0.0/33", "10.0.0/8", "fe80::1%eth0", "::ffff:10.0.0.1", "::ffff:10.0.0.0/104", "10.0.0.1:80"} {
		_, err := Parse([]string{"10.0.0.0/8", bad})
		if err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("Parse(%q) = %v, want an error quoting the entry", bad, err)
		}
	}
}
