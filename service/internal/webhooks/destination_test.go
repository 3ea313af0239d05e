package webhooks

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWebhookCheckURL(t *testing.T) {
	strict := Policy{}
	onPrem := Policy{AllowHTTP: true, AllowPrivate: true}
	tests := []struct {
		name   string
		policy Policy
		url    string
		want   string // substring of the error; "" for accepted
	}{
		{"https name", strict, "https://hooks.example.com/bitvault?x=1", ""},
		{"https public v4", strict, "https://93.184.216.34:8443/hook", ""},
		{"https public v6", strict, "https://[2606:4700::1111]/hook", ""},
		{"name under a numeric-looking label", strict, "https://1.2.3.4.nip.example/", ""},
		{"not a url", strict, "not a url", "absolute https URL"},
		{"relative", strict, "/hook", "absolute https URL"},
		{"ftp", strict, "ftp://files.example.com/", "want an https URL"},
		{"http refused by default", strict, "http://hooks.example.com/", "http is not allowed"},
		{"http allowed", onPrem, "http://hooks.example.com/", ""},
		{"upper-case scheme", strict, "HTTPS://hooks.example.com/", "lower case"},
		{"user info", strict, "https://user:pw@hooks.example.com/", "user info"},
		{"user only", strict, "https://user@hooks.example.com/", "user info"},
		{"fragment", strict, "https://hooks.example.com/#frag", "fragment"},
		{"empty fragment", strict, "https://hooks.example.com/#", "fragment"},
		{"too long", strict, "https://hooks.example.com/" + strings.Repeat("a", 2048), "2048"},
		{"loopback", strict, "https://127.0.0.1/", "loopback"},
		{"loopback elsewhere in 127/8", strict, "https://127.45.6.7:9000/", "loopback"},
		{"localhost", strict, "https://localhost:8080/", "loopback"},
		{"sub.localhost", strict, "https://api.LOCALHOST./", "loopback"},
		{"metadata", strict, "https://169.254.169.254/latest/meta-data/", "link-local"},
		{"rfc1918 10", strict, "https://10.0.0.1/", "private network"},
		{"rfc1918 172", strict, "https://172.16.5.4/", "private network"},
		{"rfc1918 192", strict, "https://192.168.1.1/", "private network"},
		{"cgnat", strict, "https://100.64.0.1/", "shared address space"},
		{"unspecified", strict, "https://0.0.0.0/", "unspecified"},
		{"multicast", strict, "https://224.0.0.1/", "multicast"},
		{"broadcast", strict, "https://255.255.255.255/", "reserved"},
		{"v6 loopback", strict, "https://[::1]/", "loopback"},
		{"v6 unspecified", strict, "https://[::]/", "unspecified"},
		{"v6 ula", strict, "https://[fd12:3456::1]/", "unique local"},
		{"v6 link-local", strict, "https://[fe80::1]/", "link-local"},
		{"v6 zone", strict, "https://[fe80::1%25eth0]/", "zones"},
		{"v4-mapped loopback", strict, "https://[::ffff:127.0.0.1]/", "loopback"},
		{"v4-mapped private", strict, "https://[::ffff:10.1.2.3]/", "private network"},
		{"nat64 metadata", strict, "https://[64:ff9b::a9fe:a9fe]/", "169.254.169.254"},
		{"6to4 loopback", strict, "https://[2002:7f00:1::1]/", "127.0.0.1"},
		{"nat64 public", strict, "https://[64:ff9b::5db8:d822]/", ""},
		{"short v4", strict, "https://127.1/", "non-canonical IPv4"},
		{"decimal v4", strict, "https://2130706433/", "non-canonical IPv4"},
		{"hex v4", strict, "https://0x7f.0.0.1/", "non-canonical IPv4"},
		{"on-prem private allowed", onPrem, "http://10.0.0.1:8080/", ""},
		{"on-prem loopback allowed", onPrem, "http://localhost:8080/", ""},
		{"on-prem metadata still refused", onPrem, "http://169.254.169.254/", "link-local"},
		{"cidr allows link-local", Policy{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("169.254.10.0/24")}}, "https://169.254.10.1/", ""},
		{"cidr is precise", Policy{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}, "https://10.2.0.1/", "private network"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.CheckURL(tt.url)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("CheckURL(%q) = %v, want accepted", tt.url, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("CheckURL(%q) = %v, want an error mentioning %q", tt.url, err, tt.want)
			}
		})
	}
}

// The error of a refused private destination tells the operator which settings open it.
func TestWebhookCheckAddrHints(t *testing.T) {
	err := Policy{}.CheckAddr(netip.MustParseAddr("10.0.0.1"))
	if err == nil || !strings.Contains(err.Error(), EnvAllowPrivate) || !strings.Contains(err.Error(), EnvAllowedCIDRs) {
		t.Errorf("private: %v", err)
	}
	err = Policy{AllowPrivate: true}.CheckAddr(netip.MustParseAddr("169.254.169.254"))
	if err == nil || strings.Contains(err.Error(), EnvAllowPrivate) || !strings.Contains(err.Error(), EnvAllowedCIDRs) {
		t.Errorf("metadata: %v (AllowPrivate does not open it: only the CIDR list does)", err)
	}
	if _, ok := errors.AsType[*DestinationError](err); !ok {
		t.Errorf("%T, want *DestinationError", err)
	}
}

// fakeResolver maps names to addresses without DNS and counts lookups.
type fakeResolver struct {
	names   map[string][]string
	lookups atomic.Int32
}

func (r *fakeResolver) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	r.lookups.Add(1)
	var out []netip.Addr
	for _, s := range r.names[host] {
		out = append(out, netip.MustParseAddr(s))
	}
	if out == nil {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

// The guarded client checks every address a name resolves to, before dialing, and dials
// only the checked addresses; redirects are not followed.
func TestWebhookGuardedClient(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	redirect := httptest.NewServer(http.RedirectHandler(srv.URL, http.StatusFound))
	t.Cleanup(redirect.Close)
	res := &fakeResolver{names: map[string][]string{
		"receiver.test": {"127.0.0.1"},
		"metadata.test": {"169.254.169.254"},
		"private.test":  {"10.0.0.7"},
		"mapped.test":   {"::ffff:127.0.0.1"},
		"mixed.test":    {"127.0.0.1", "169.254.169.254"},
	}}
	url := func(host string) string { return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/hook" }
	tests := []struct {
		name   string
		policy Policy
		url    string
		want   string // substring of the refusal; "" for delivered
	}{
		{"literal loopback", Policy{}, srv.URL, "loopback"},
		{"name to loopback", Policy{}, url("receiver.test"), "loopback"},
		{"name to metadata", Policy{AllowPrivate: true}, url("metadata.test"), "link-local"},
		{"name to private", Policy{}, url("private.test"), "private network"},
		{"name to v4-mapped loopback", Policy{}, url("mapped.test"), "loopback"},
		{"one refused address refuses the name", Policy{AllowPrivate: true}, url("mixed.test"), "link-local"},
		{"on-prem name", Policy{AllowPrivate: true}, url("receiver.test"), ""},
		{"on-prem mapped", Policy{AllowPrivate: true}, url("mapped.test"), ""},
		{"cidr", Policy{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, url("receiver.test"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.policy.LookupIP = res.lookup
			before := hits.Load()
			resp, err := tt.policy.client(5*time.Second).Post(tt.url, "application/json", strings.NewReader("{}"))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("POST %s: %v", tt.url, err)
				}
				resp.Body.Close()
				if hits.Load() != before+1 {
					t.Fatal("the receiver was not reached")
				}
				return
			}
			if err == nil {
				resp.Body.Close()
			}
			refused, ok := errors.AsType[*DestinationError](err)
			if !ok || !strings.Contains(refused.Error(), tt.want) {
				t.Fatalf("POST %s: %v, want a *DestinationError mentioning %q", tt.url, err, tt.want)
			}
			if hits.Load() != before {
				t.Fatal("the receiver was reached")
			}
		})
	}
	t.Run("redirect not followed", func(t *testing.T) {
		before := hits.Load()
		resp, err := Policy{AllowPrivate: true}.client(5*time.Second).Post(redirect.URL, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || hits.Load() != before {
			t.Fatalf("status %d, hits %d: the redirect was followed", resp.StatusCode, hits.Load()-before)
		}
	})
}

// The dialer's Control refuses an address even when the connection does not come through
// the guarded resolution (defence in depth).
func TestWebhookDialControl(t *testing.T) {
	p := Policy{}
	for addr, want := range map[string]string{
		"127.0.0.1:80":        "loopback",
		"[::1]:443":           "loopback",
		"169.254.169.254:80":  "link-local",
		"[::ffff:10.0.0.1]:1": "private network",
		"nonsense":            "unparsable",
	} {
		err := p.control("tcp", addr, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("control(%s) = %v, want %q", addr, err, want)
		}
	}
	if err := p.control("tcp4", "93.184.216.34:443", nil); err != nil {
		t.Errorf("public: %v", err)
	}
}
