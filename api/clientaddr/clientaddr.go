// Package clientaddr says which address an HTTP request came from: the
// TCP peer, or, when the peer is a trusted reverse proxy, the address
// that proxy (and the trusted ones before it) recorded in
// X-Forwarded-For.
//
// X-Forwarded-For is a comma list every proxy appends its own peer to,
// so only its right end can be believed: a client writes whatever it
// likes at the left. The client is therefore the right-most entry that
// is not itself a trusted proxy, walking from the right past trusted
// hops; when every hop is trusted it is the left-most (a request from
// inside the proxy ranges). An entry that is not an IP address, met
// before the client is found, stops the walk and the peer is the
// answer: the list was not written by a proxy that can be believed.
package clientaddr

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ErrBadForwarded means the peer is a trusted proxy but its
// X-Forwarded-For held an entry that is not an IP address where the
// client should be; the address returned with it is the peer's.
var ErrBadForwarded = errors.New("clientaddr: unusable X-Forwarded-For from a trusted proxy")

// ErrNoPeer means the request's RemoteAddr is not an IP address (a test
// request, a unix socket).
var ErrNoPeer = errors.New("clientaddr: peer is not an IP address")

// Proxies are the ranges of the trusted reverse proxies, in plain form
// (see Parse). Nil trusts none: the TCP peer is always the client and
// X-Forwarded-For is ignored.
type Proxies []netip.Prefix

// Parse returns the proxies of items, each a CIDR (10.0.0.0/8,
// fd00::/8) or a single address (192.0.2.7, ::1). Host bits after the
// mask are dropped (10.1.2.3/8 is 10.0.0.0/8). IPv4-mapped IPv6 forms
// and zones are refused: peers are compared in their plain form.
func Parse(items []string) (Proxies, error) {
	var p Proxies
	for _, item := range items {
		r, err := parseRange(strings.TrimSpace(item))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		p = append(p, r)
	}
	return p, nil
}

func parseRange(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("empty entry")
	}
	var r netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if r, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, errors.New("want a CIDR such as 10.0.0.0/8 or fd00::/8, or an IP address")
		}
	} else {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, errors.New("want an IP address such as 192.0.2.7 or ::1, or a CIDR")
		}
		if ip.Zone() != "" {
			return netip.Prefix{}, errors.New("an IPv6 zone (%...) cannot be trusted; drop it")
		}
		r = netip.PrefixFrom(ip, ip.BitLen())
	}
	if r.Addr().Is4In6() {
		return netip.Prefix{}, errors.New("an IPv4-mapped IPv6 form; write the IPv4 address or CIDR")
	}
	return r.Masked(), nil
}

// String is the comma list of the trusted ranges.
func (p Proxies) String() string {
	s := make([]string, len(p))
	for i, r := range p {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}

// trusted reports whether ip is inside a trusted range.
func (p Proxies) trusted(ip netip.Addr) bool {
	for _, r := range p {
		if r.Contains(ip) {
			return true
		}
	}
	return false
}

// Client returns the address r came from (see the package comment), in
// plain form: IPv4-mapped IPv6 unmapped, no zone. With ErrBadForwarded
// the address is the peer's and may still be used; with ErrNoPeer there
// is none.
func (p Proxies) Client(r *http.Request) (netip.Addr, error) {
	peer, ok := parseIP(r.RemoteAddr)
	if !ok {
		return netip.Addr{}, ErrNoPeer
	}
	if !p.trusted(peer) {
		return peer, nil
	}
	values := r.Header.Values("X-Forwarded-For")
	leftmost := peer
	// Walk the entries from the right end of the last header line to the
	// left end of the first, stopping at the first hop not trusted.
	for i := len(values) - 1; i >= 0; i-- {
		list := values[i]
		if strings.TrimSpace(list) == "" {
			continue // an empty line adds no hop
		}
		for {
			j := strings.LastIndexByte(list, ',')
			entry := list[j+1:]
			ip, ok := parseIP(strings.TrimSpace(entry))
			if !ok {
				return peer, ErrBadForwarded
			}
			if !p.trusted(ip) {
				return ip, nil
			}
			leftmost = ip
			if j < 0 {
				break
			}
			list = list[:j]
		}
	}
	return leftmost, nil
}

// parseIP reads an address as a peer or a proxy records it: bare
// (192.0.2.7, 2001:db8::1) or with a port (192.0.2.7:443,
// [2001:db8::1]:443).
func parseIP(s string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		host, _, splitErr := net.SplitHostPort(s)
		if splitErr != nil {
			return netip.Addr{}, false
		}
		if ip, err = netip.ParseAddr(host); err != nil {
			return netip.Addr{}, false
		}
	}
	return ip.Unmap().WithZone(""), true
}
