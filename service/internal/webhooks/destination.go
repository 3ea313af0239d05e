package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Policy decides which webhook destinations bitvaultd may POST to. A tenant admin chooses
// the URL, and the dispatcher runs inside the deployment's network: without this guard a
// webhook is a server-side request forgery primitive (the cloud metadata service at
// 169.254.169.254, the database, an admin port on 127.0.0.1, …).
//
// The policy is enforced twice: on the URL at registration (CheckURL: scheme, no
// credentials, no fragment, no literal internal address) and, at delivery, on every address
// actually dialed (the transport resolves the host itself, checks every address, then dials
// exactly those addresses, and the dialer's Control checks the socket's address once more),
// so a host name resolving to an internal address, DNS rebinding between check and dial,
// and redirects (never followed) cannot get around it.
type Policy struct {
	// AllowHTTP accepts http:// URLs (default: https only, so payloads and signatures are not
	// readable on the wire).
	AllowHTTP bool
	// AllowPrivate accepts private-network destinations: RFC 1918 (10/8, 172.16/12,
	// 192.168/16), shared address space (100.64/10), IPv6 unique local (fc00::/7) and
	// loopback (127/8, ::1, "localhost"), for on-prem receivers. Link-local (169.254/16 with
	// the cloud metadata endpoint, fe80::/10), unspecified, multicast, documentation and
	// reserved ranges stay refused: list them in AllowedCIDRs to reach them anyway.
	AllowPrivate bool
	// AllowedCIDRs are accepted whatever their range: the precise exception (e.g. the one
	// subnet of an on-prem receiver) where AllowPrivate is too broad.
	AllowedCIDRs []netip.Prefix
	// LookupIP resolves a host name at delivery (nil: net.DefaultResolver.LookupNetIP); tests
	// replace it to map names to internal addresses without real DNS.
	LookupIP func(ctx context.Context, host string) ([]netip.Addr, error)
}

// DestinationError is a destination refused by the Policy.
type DestinationError struct {
	Addr   netip.Addr // the refused address (invalid for a refused URL)
	Reason string     // the rule, e.g. "loopback"
}

func (e *DestinationError) Error() string {
	if !e.Addr.IsValid() {
		return "webhook destination refused: " + e.Reason
	}
	return fmt.Sprintf("webhook destination %s refused: %s", e.Addr, e.Reason)
}

// addrRange is a special-purpose range; private ranges are the ones AllowPrivate opens.
type addrRange struct {
	prefix  netip.Prefix
	what    string
	private bool
}

// specialRanges are the non-public ranges (IANA special-purpose registries), most specific
// first where they overlap (::1 and :: inside ::/96). IPv4-mapped IPv6 addresses are unmapped
// before the lookup; NAT64 and 6to4 addresses are judged by the IPv4 address they embed.
var specialRanges = func() []addrRange {
	r := func(cidr, what string, private bool) addrRange {
		return addrRange{netip.MustParsePrefix(cidr), what, private}
	}
	return []addrRange{
		r("0.0.0.0/8", "unspecified (\"this network\")", false),
		r("10.0.0.0/8", "private network (RFC 1918)", true),
		r("100.64.0.0/10", "shared address space (RFC 6598, carrier-grade NAT)", true),
		r("127.0.0.0/8", "loopback", true),
		r("169.254.0.0/16", "link-local (includes the cloud metadata endpoint 169.254.169.254)", false),
		r("172.16.0.0/12", "private network (RFC 1918)", true),
		r("192.0.0.0/24", "IETF protocol assignments", false),
		r("192.0.2.0/24", "documentation (TEST-NET-1)", false),
		r("192.88.99.0/24", "6to4 relay anycast", false),
		r("192.168.0.0/16", "private network (RFC 1918)", true),
		r("198.18.0.0/15", "benchmarking", false),
		r("198.51.100.0/24", "documentation (TEST-NET-2)", false),
		r("203.0.113.0/24", "documentation (TEST-NET-3)", false),
		r("224.0.0.0/4", "multicast", false),
		r("240.0.0.0/4", "reserved (includes broadcast)", false),
		r("::/128", "unspecified", false),
		r("::1/128", "loopback", true),
		r("::/96", "IPv4-compatible IPv6 (deprecated)", false),
		r("64:ff9b:1::/48", "local-use NAT64", false),
		r("100::/64", "discard-only", false),
		r("2001::/23", "IETF protocol assignments (includes Teredo)", false),
		r("2001:db8::/32", "documentation", false),
		r("fc00::/7", "unique local address (private network)", true),
		r("fe80::/10", "link-local", false),
		r("fec0::/10", "site-local (deprecated)", false),
		r("ff00::/8", "multicast", false),
	}
}()

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// embeddedIPv4 returns the IPv4 address that a NAT64 (64:ff9b::/96) or 6to4 (2002::/16)
// address reaches: those translate to IPv4 on the way, so the IPv4 address is what counts.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case nat64Prefix.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// CheckAddr refuses an address in a non-public range that the policy does not open.
func (p Policy) CheckAddr(a netip.Addr) error {
	if !a.IsValid() {
		return &DestinationError{Reason: "invalid address"}
	}
	a = a.Unmap().WithZone("")
	for _, allowed := range p.AllowedCIDRs {
		if allowed.Contains(a) {
			return nil
		}
	}
	if v4, ok := embeddedIPv4(a); ok {
		var refused *DestinationError
		if errors.As(p.CheckAddr(v4), &refused) {
			return &DestinationError{Addr: a, Reason: fmt.Sprintf("embeds the IPv4 address %s, %s", v4, refused.Reason)}
		}
		return nil
	}
	for _, r := range specialRanges {
		if !r.prefix.Contains(a) {
			continue
		}
		if r.private && p.AllowPrivate {
			return nil
		}
		return &DestinationError{Addr: a, Reason: r.what + p.hint(r.private)}
	}
	return nil
}

// hint tells the operator which setting opens a refused range.
func (p Policy) hint(private bool) string {
	if private {
		return " (on-prem receivers: set " + EnvAllowPrivate + "=true or list the network in " + EnvAllowedCIDRs + ")"
	}
	return " (to reach it anyway, list it in " + EnvAllowedCIDRs + ")"
}

// loopbackV4 stands for the names that always mean this host (RFC 6761).
var loopbackV4 = netip.MustParseAddr("127.0.0.1")

// CheckURL validates a webhook URL against the policy, without resolving its host: the
// result may change before delivery, where every dialed address is checked anyway. Host
// names that are loopback by definition and literal addresses are judged here, so the
// admin hears about the obvious mistakes at once. Errors name the rule broken.
func (p Policy) CheckURL(raw string) error {
	if len(raw) > 2048 {
		return errors.New("url: longer than 2048 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return errors.New("url: want an absolute https URL")
	}
	if err := p.checkScheme(raw, u.Scheme); err != nil {
		return err
	}
	if u.User != nil {
		return errors.New("url: must not contain user info (credentials belong in the signature, not the URL)")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("url: must not contain a fragment")
	}
	return p.checkHost(u.Hostname())
}

// checkScheme wants https (http only with AllowHTTP), spelled in lower case as the
// webhook_endpoints CHECK constraint does.
func (p Policy) checkScheme(raw, scheme string) error {
	switch {
	case scheme == "https" || (scheme == "http" && p.AllowHTTP):
	case scheme == "http":
		return errors.New("url: http is not allowed, use https (or set " + EnvAllowHTTP + "=true)")
	default:
		return errors.New("url: want an https URL")
	}
	if !strings.HasPrefix(raw, scheme+"://") {
		return errors.New("url: the scheme must be lower case")
	}
	return nil
}

// checkHost judges a URL's host: a literal address by its range; a name by its form.
func (p Policy) checkHost(host string) error {
	if host == "" {
		return errors.New("url: missing host")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return errors.New("url: IPv6 zones are not allowed")
		}
		return urlError(p.CheckAddr(a))
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return urlError(p.CheckAddr(loopbackV4))
	}
	labels := strings.Split(name, ".")
	if numericLabel(labels[len(labels)-1]) {
		// No top-level domain is numeric: this is an IPv4 address in a non-canonical form
		// (127.1, 2130706433, 0x7f.0.0.1) that some resolvers would still accept.
		return errors.New("url: host looks like a non-canonical IPv4 address; write it as a.b.c.d")
	}
	return nil
}

func urlError(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("url: %w", err)
}

// numericLabel reports a decimal, octal or hexadecimal number.
func numericLabel(s string) bool {
	if s == "" {
		return false
	}
	if h, ok := strings.CutPrefix(s, "0x"); ok {
		s = h
		return s == "" || strings.Trim(s, "0123456789abcdef") == ""
	}
	return strings.Trim(s, "0123456789") == ""
}

// resolve returns the addresses of host (itself if it is a literal address).
func (p Policy) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	lookup := p.LookupIP
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	addrs, err := lookup(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	return addrs, nil
}

// dialContext resolves addr's host, refuses the whole destination if any of its addresses
// is refused (a name that also points inside is not a legitimate receiver, and refusing it
// outright makes the reason visible), then dials the checked addresses in turn. The name is
// never resolved again, so the address dialed is the address checked.
func (p Policy) dialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		addrs, err := p.resolve(ctx, host)
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			if err := p.CheckAddr(a); err != nil {
				return nil, err
			}
		}
		var errs []error
		for _, a := range addrs {
			conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
			if err == nil {
				return conn, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
}

// control is the dialer's last check, on the socket's address just before connect: it holds
// even for a connection not made through dialContext's resolution.
func (p Policy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &DestinationError{Reason: "unparsable dial address " + address}
	}
	return p.CheckAddr(ap.Addr())
}

// client returns the delivery HTTP client: guarded dialing, no proxy (a proxy would make the
// connections itself, out of the guard's sight: deliveries ignore HTTP(S)_PROXY), no
// redirects (a 3xx answer is a failed attempt, so a receiver cannot bounce the dispatcher to
// an internal URL).
func (p Policy) client(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: p.control}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           p.dialContext(dialer),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Timeout:       timeout,
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
