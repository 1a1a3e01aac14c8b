package subscriptions

import (
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// MaxEndpointLen is the longest endpoint URL accepted, in bytes: longer
// URLs are almost always mistakes or abuse, and 2,048 is what browsers
// and most proxies handle everywhere.
const MaxEndpointLen = 2048

// Errors of ValidateEndpoint. They never quote the URL, which may carry a
// token in its path or query.
var (
	// ErrEndpointInvalid means the endpoint is not an absolute URL.
	ErrEndpointInvalid = errors.New("subscriptions: endpoint_url is not a valid absolute URL")
	// ErrEndpointScheme means the scheme is not https (or http with
	// allowInsecure).
	ErrEndpointScheme = errors.New("subscriptions: endpoint_url must be https")
	// ErrEndpointUserinfo means the URL carries user:password@, which
	// would end up in logs and proxies; receivers authenticate by
	// signature.
	ErrEndpointUserinfo = errors.New("subscriptions: endpoint_url must not contain user info")
	// ErrEndpointHost means the host is missing or is not a valid DNS
	// name or IP literal, or the port is invalid.
	ErrEndpointHost = errors.New("subscriptions: endpoint_url has a missing or invalid host")
	// ErrEndpointPrivate means the host is a literal non-public address
	// (loopback, private, link-local, CGNAT, cloud metadata, …) or
	// localhost.
	ErrEndpointPrivate = errors.New("subscriptions: endpoint_url must be a public host")
	// ErrEndpointTooLong means the URL is longer than MaxEndpointLen.
	ErrEndpointTooLong = errors.New("subscriptions: endpoint_url is too long")
)

// ValidateEndpoint checks an endpoint URL at create and update time:
// https only, no user info, a valid host that is not a literal
// non-public address or localhost, at most MaxEndpointLen bytes. With
// allowInsecure (local development, tests) http and private or loopback
// hosts are accepted, but user info and a missing host still fail.
//
// It does not resolve names: a public name can point at a private address,
// and DNS answers change after creation, so the dispatcher checks every
// resolved address with IsPublicAddr when it dials.
func ValidateEndpoint(raw string, allowInsecure bool) error {
	if len(raw) > MaxEndpointLen {
		return ErrEndpointTooLong
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return ErrEndpointInvalid
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowInsecure:
	default:
		return ErrEndpointScheme
	}
	if u.User != nil {
		return ErrEndpointUserinfo
	}
	if u.Opaque != "" {
		return ErrEndpointHost
	}
	host := u.Hostname()
	if host == "" {
		return ErrEndpointHost
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return ErrEndpointHost
		}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !allowInsecure && !IsPublicAddr(ip) {
			return ErrEndpointPrivate
		}
		return nil
	}
	if strings.Contains(u.Host, "[") { // brackets hold only IPv6 literals
		return ErrEndpointHost
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if !validHostname(name) {
		return ErrEndpointHost
	}
	if !allowInsecure && (name == "localhost" || strings.HasSuffix(name, ".localhost")) {
		return ErrEndpointPrivate
	}
	return nil
}

// validHostname reports whether name is a DNS host name: labels of 1–63
// letters, digits, '-' or '_' (not at either end for '-'), 253 bytes in
// all. A last label of digits only is rejected: no TLD is numeric, and
// resolvers read names like "127.1" or "2130706433" as IPv4 addresses,
// a classic way around literal-IP checks.
func validHostname(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			letter := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !letter {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != "" && !strings.HasPrefix(last, "0x")
}

// nonPublic are the special-purpose ranges of the IANA IPv4 and IPv6
// special-purpose address registries that IsPublicAddr rejects beyond
// what netip's predicates cover (loopback, RFC 1918 and fc00::/7,
// link-local, multicast, unspecified). The IPv4 ranges the registry marks
// globally reachable (AS112, AMT) stay allowed; IETF protocol
// assignments are blocked whole even where a sub-range is globally
// reachable (192.0.0.9, 2001:1::1, AS112-v6, …): no webhook receiver
// lives there.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // CGNAT shared address space
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast (deprecated)
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, incl. 255.255.255.255 broadcast
	// IPv6 outside 2000::/3 is refused by IsPublicAddr as a whole; the
	// entries below that lie outside it name the ranges that matter.
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated), ::, ::1
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated (RFC 2765 SIIT): embeds any IPv4
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: embeds any IPv4, incl. private ones
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("100:0:0:1::/64"),  // dummy prefix (RFC 9780)
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments: Teredo, benchmarking, ORCHID, …
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds an IPv4
	netip.MustParsePrefix("3fff::/20"),       // documentation (RFC 9637)
	netip.MustParsePrefix("5f00::/16"),       // SRv6 segment identifiers (RFC 9602)
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
}

// globalUnicast6 is the only IPv6 range IANA allocates for global
// unicast; everything else is reserved, local or special-purpose.
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// IsPublicAddr reports whether ip is a globally routable unicast address
// that webhook requests may reach. It is false for loopback, private
// (RFC 1918, fc00::/7), link-local (incl. the 169.254.169.254 cloud
// metadata address), unspecified, multicast, CGNAT, documentation,
// benchmarking and reserved ranges, broadcast, every IPv6 address outside
// 2000::/3, and IPv6 transition prefixes that embed an IPv4 address
// (IPv4-translated ::ffff:0:a.b.c.d, NAT64, 6to4, Teredo). IPv4-mapped
// IPv6 addresses (::ffff:a.b.c.d) are judged as their IPv4 address, and
// a zone is ignored.
func IsPublicAddr(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsMulticast() ||
		ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() || ip.IsLinkLocalMulticast() {
		return false
	}
	if ip.Is6() && !globalUnicast6.Contains(ip) {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
