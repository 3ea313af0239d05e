package ratelimit

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP is the address of r's client as the rate limits count it. It is the
// connection's peer (r.RemoteAddr without the port), unless the peer is one of the trusted
// proxies (Config.TrustedProxies): then it is the nearest address of X-Forwarded-For that is
// not a trusted proxy, read from the right, since each proxy appends the peer it saw and
// anything to the left of the first proxy was written by the client and proves nothing.
// With no trusted proxies (the default) the header is ignored: any client may send it.
func (c Config) ClientIP(r *http.Request) string {
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	if len(c.TrustedProxies) == 0 || !c.trusted(peer) {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for _, a := range strings.Split(h, ",") {
			hops = append(hops, strings.TrimSpace(a))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			// Garbage from the client side: the last trusted hop is what we know.
			return peer
		}
		if !c.trusted(a.String()) {
			return a.Unmap().String()
		}
		peer = a.String()
	}
	return peer
}

func (c Config) trusted(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range c.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// normalizeIP maps an address to what one client controls: an IPv4 address (IPv4-mapped
// IPv6 included) as itself, an IPv6 address as its /64. Anything unparsable is kept as is.
func normalizeIP(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}
