package webhooks_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
	"github.com/bitvault/bitvault/service/internal/webhooks"
)

func TestMain(m *testing.M) { os.Exit(apitest.Main(m)) }

var (
	keyOld = bytes.Repeat([]byte("o"), 32)
	keyNew = bytes.Repeat([]byte("n"), 32)
)

// newService is a webhooks service on e's database; retries wait an hour, so a failed
// attempt stays pending with its reason, and nothing is retried during the test.
func newService(t *testing.T, e *apitest.Env, cfg webhooks.Config) *webhooks.Service {
	t.Helper()
	if cfg.SecretKey == nil {
		cfg.SecretKey = keyNew
	}
	if cfg.Schedule == nil {
		cfg.Schedule = []time.Duration{time.Hour}
	}
	cfg.Timeout = 5 * time.Second
	svc, err := webhooks.New(e.Pool, cfg, e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// receiver records the signed requests it gets.
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	sigs   []string
	srv    *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.bodies = append(r.bodies, b)
		r.sigs = append(r.sigs, req.Header.Get(webhooks.HeaderSignature))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// url is the receiver's URL under host (a name the test resolver knows, or a literal).
func (r *receiver) url(host string) string {
	return "http://" + net.JoinHostPort(host, strconv.Itoa(r.srv.Listener.Addr().(*net.TCPAddr).Port)) + "/hook"
}

func (r *receiver) calls() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.bodies) }

// verifyAll checks that every request was signed with secret.
func (r *receiver) verifyAll(t *testing.T, secret string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.bodies {
		if err := webhooks.Verify(secret, r.sigs[i], r.bodies[i], time.Now(), 0); err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
}

// resolver maps the test names to addresses, in place of DNS.
func resolver(names map[string]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		var out []netip.Addr
		for a := range strings.SplitSeq(names[host], ",") {
			if a != "" {
				out = append(out, netip.MustParseAddr(a))
			}
		}
		if out == nil {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return out, nil
	}
}

func enqueue(t *testing.T, e *apitest.Env, svc *webhooks.Service, tenant, eventID string) {
	t.Helper()
	ctx := context.Background()
	err := db.WithTenant(ctx, e.Pool, tenant, func(tx pgx.Tx) error {
		_, err := svc.Enqueue(ctx, tx, webhooks.Event{ID: eventID, Tenant: tenant, Type: "files.version.created", Payload: []byte(`{"n":1}`)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func create(t *testing.T, svc *webhooks.Service, owner apitest.User, url string) webhooks.Endpoint {
	t.Helper()
	ep, err := svc.Create(context.Background(), owner.P, webhooks.NewEndpoint{URL: url})
	if err != nil {
		t.Fatalf("create %s: %v", url, err)
	}
	return ep
}

// lastDelivery is the endpoint's newest delivery.
func lastDelivery(t *testing.T, svc *webhooks.Service, owner apitest.User, id string) webhooks.Delivery {
	t.Helper()
	ds, err := svc.Deliveries(context.Background(), owner.P, id, 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries of %s: %v, %v", id, ds, err)
	}
	return ds[0]
}

func dispatch(t *testing.T, svc *webhooks.Service) {
	t.Helper()
	if _, err := svc.DispatchOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func storedSecret(t *testing.T, e *apitest.Env, id string) (secret string, keyID *string) {
	t.Helper()
	if err := e.Super.QueryRow(context.Background(), "SELECT secret, secret_key_id FROM webhook_endpoints WHERE id = $1::uuid", id).Scan(&secret, &keyID); err != nil {
		t.Fatal(err)
	}
	return secret, keyID
}

// The API refuses URLs breaking the destination rules with invalid_argument naming the rule.
func TestWebhookRegistrationRules(t *testing.T) {
	e := apitest.New(t)
	owner, _, _ := e.Tenant("acme")
	newService(t, e, webhooks.Config{}).Routes(e.Mux, e.Auth)
	for url, rule := range map[string]string{
		"http://hooks.example.com/":                "http is not allowed",
		"https://user:pw@hooks.example.com/":       "user info",
		"https://hooks.example.com/#x":             "fragment",
		"https://127.0.0.1:8080/":                  "loopback",
		"https://localhost/":                       "loopback",
		"https://169.254.169.254/latest/meta-data": "link-local",
		"https://10.0.0.1/":                        "private network",
		"https://172.16.0.1/":                      "private network",
		"https://192.168.0.1/":                     "private network",
		"https://100.64.0.1/":                      "shared address space",
		"https://[fc00::1]/":                       "unique local",
		"https://[fe80::1]/":                       "link-local",
		"https://[::1]/":                           "loopback",
		"https://0.0.0.0/":                         "unspecified",
		"https://[::ffff:169.254.169.254]/":        "link-local",
	} {
		r := e.Want(e.Do("POST", "/v1/webhooks", owner.Token, map[string]any{"url": url}), 400, "invalid_argument")
		if !strings.Contains(string(r.Body), rule) {
			t.Errorf("%s: %s, want the rule %q", url, r.Body, rule)
		}
	}
	e.Want(e.Do("POST", "/v1/webhooks", owner.Token, map[string]any{"url": "https://hooks.example.com/bitvault"}), 201, "")
}

// By default, the dispatcher refuses loopback, private and metadata destinations, literal or
// behind a name resolving to them, and the delivery is dead at once with the reason; with
// the receiver's network allowed (BITVAULT_WEBHOOK_ALLOWED_CIDRS), it gets the deliveries
// addressed to it, and only those.
func TestWebhookDeliveryDestinationPolicy(t *testing.T) {
	e := apitest.New(t)
	owner, _, _ := e.Tenant("acme")
	rec := newReceiver(t)
	lookup := resolver(map[string]string{
		"loopback.test": "127.0.0.1",
		"metadata.test": "169.254.169.254",
		"private.test":  "10.20.30.40",
		"mapped.test":   "::ffff:127.0.0.1",
		"mixed.test":    "127.0.0.1,169.254.169.254",
	})
	// Registered while loopback was allowed; the policy is then tightened.
	lenient := newService(t, e, webhooks.Config{Destinations: webhooks.Policy{AllowHTTP: true, AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, LookupIP: lookup}})
	strict := newService(t, e, webhooks.Config{Destinations: webhooks.Policy{AllowHTTP: true, LookupIP: lookup}})
	cases := []struct{ host, rule string }{
		{"127.0.0.1", "loopback"},
		{"loopback.test", "loopback"},
		{"metadata.test", "link-local"},
		{"private.test", "private network"},
		{"mapped.test", "loopback"},
		{"mixed.test", "loopback"},
	}
	eps := make([]webhooks.Endpoint, len(cases))
	for i, c := range cases {
		eps[i] = create(t, lenient, owner, rec.url(c.host))
	}
	enqueue(t, e, strict, owner.P.TenantID, "evt-1")
	dispatch(t, strict)
	for i, c := range cases {
		d := lastDelivery(t, strict, owner, eps[i].ID)
		if d.Status != "dead" || d.Attempts != 1 || d.LastError == nil || !strings.Contains(*d.LastError, c.rule) || !strings.Contains(*d.LastError, "refused") {
			t.Errorf("%s: %s after %d attempts, error %v; want dead at once, refused as %s", c.host, d.Status, d.Attempts, ptr(d.LastError), c.rule)
		}
	}
	if n := rec.calls(); n != 0 {
		t.Fatalf("the receiver got %d requests", n)
	}

	// Allowing 127.0.0.0/8 opens the loopback receiver, not the other destinations (nor a
	// name resolving to both).
	enqueue(t, e, lenient, owner.P.TenantID, "evt-2")
	dispatch(t, lenient)
	for i, c := range cases {
		d := lastDelivery(t, lenient, owner, eps[i].ID)
		want := "delivered"
		switch c.host {
		case "metadata.test", "private.test", "mixed.test":
			want = "dead"
		}
		if d.Status != want {
			t.Errorf("%s with 127.0.0.0/8 allowed: %s (%v), want %s", c.host, d.Status, ptr(d.LastError), want)
		}
	}
	if n := rec.calls(); n != 3 {
		t.Fatalf("the receiver got %d requests, want 3", n)
	}
}

// The secret is stored sealed (not the secret, not returned by the API), signatures verify
// with the secret shown at creation, and a tampered or moved value fails the delivery with
// the reason instead of signing with garbage.
func TestWebhookSecretEncryptedAtRest(t *testing.T) {
	e := apitest.New(t)
	owner, _, _ := e.Tenant("acme")
	rec := newReceiver(t)
	svc := newService(t, e, webhooks.Config{Destinations: webhooks.Policy{AllowHTTP: true, AllowPrivate: true}})
	svc.Routes(e.Mux, e.Auth)
	var ep webhooks.Endpoint
	e.Want(e.Do("POST", "/v1/webhooks", owner.Token, map[string]any{"url": rec.url("127.0.0.1")}), 201, "").Decode(t, &ep)
	if !strings.HasPrefix(ep.Secret, "whsec_") {
		t.Fatalf("created: %+v", ep)
	}
	stored, keyID := storedSecret(t, e, ep.ID)
	if stored == ep.Secret || strings.Contains(stored, ep.Secret[6:]) || !strings.HasPrefix(stored, "enc:v1:"+svc.ActiveKeyID()+":") {
		t.Fatalf("stored %q: want the sealed form, without the secret", stored)
	}
	if keyID == nil || *keyID != svc.ActiveKeyID() {
		t.Fatalf("secret_key_id %v, want %s", ptr(keyID), svc.ActiveKeyID())
	}
	list := e.Want(e.Do("GET", "/v1/webhooks", owner.Token, nil), 200, "")
	if strings.Contains(string(list.Body), ep.Secret) || strings.Contains(string(list.Body), "secret") {
		t.Fatalf("the list shows the secret: %s", list.Body)
	}

	enqueue(t, e, svc, owner.P.TenantID, "evt-1")
	dispatch(t, svc)
	if d := lastDelivery(t, svc, owner, ep.ID); d.Status != "delivered" || rec.calls() != 1 {
		t.Fatalf("delivery %+v, %d calls", d, rec.calls())
	}
	rec.verifyAll(t, ep.Secret)

	other := create(t, svc, owner, rec.url("127.0.0.1"))
	otherStored, _ := storedSecret(t, e, other.ID)
	// Change one base64 character of the ciphertext to another valid one.
	tampered := []byte(stored)
	if i := len(tampered) - 20; tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}
	for _, tt := range []struct{ name, id, value, want string }{
		{"tampered", ep.ID, string(tampered), "authentication failed"},
		{"moved from another endpoint", ep.ID, otherStored, "authentication failed"},
		{"garbage", ep.ID, "enc:v1:" + svc.ActiveKeyID() + ":", "malformed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.Super.Exec(context.Background(), "UPDATE webhook_endpoints SET secret = $2 WHERE id = $1::uuid", tt.id, tt.value); err != nil {
				t.Fatal(err)
			}
			before := rec.calls()
			enqueue(t, e, svc, owner.P.TenantID, "evt-"+tt.name)
			dispatch(t, svc)
			d := lastDelivery(t, svc, owner, tt.id)
			if d.Status != "pending" || d.Attempts != 1 || d.LastError == nil || !strings.Contains(*d.LastError, "cannot be decrypted") || !strings.Contains(*d.LastError, tt.want) {
				t.Fatalf("delivery %s after %d attempts, error %v; want a retry with the reason %q", d.Status, d.Attempts, ptr(d.LastError), tt.want)
			}
			if got := rec.calls(); got != before+1 {
				// The other endpoint (intact) still gets its delivery; the broken one sends nothing.
				t.Fatalf("receiver calls %d, want %d", got, before+1)
			}
		})
	}
}

// Rotation: with a new active key and the old one kept for decryption, the rows of the old
// key and the legacy plaintext rows are re-encrypted under the new key (at the dispatcher's
// start, ReencryptAll), after which the new key alone suffices, while the old key alone no
// longer opens them (the delivery fails with the reason).
func TestWebhookSecretRotation(t *testing.T) {
	e := apitest.New(t)
	owner, _, _ := e.Tenant("acme")
	rec := newReceiver(t)
	policy := webhooks.Policy{AllowHTTP: true, AllowPrivate: true}
	old := newService(t, e, webhooks.Config{SecretKey: keyOld, Destinations: policy})
	sealed := create(t, old, owner, rec.url("127.0.0.1"))

	// A row from before encryption at rest: the plaintext secret in the column.
	legacy := "whsec_" + strings.Repeat("ab", 32)
	var legacyID string
	err := e.Super.QueryRow(context.Background(), `INSERT INTO webhook_endpoints (tenant_id, url, secret, created_by)
VALUES ($1, $2, $3, $4) RETURNING id::text`, owner.P.TenantID, rec.url("127.0.0.1"), legacy, owner.P.UserID).Scan(&legacyID)
	if err != nil {
		t.Fatal(err)
	}
	if _, keyID := storedSecret(t, e, legacyID); keyID != nil {
		t.Fatalf("legacy row secret_key_id %q, want NULL", *keyID)
	}

	rotated := newService(t, e, webhooks.Config{SecretKey: keyNew, OldSecretKeys: [][]byte{keyOld}, Destinations: policy})
	n, err := rotated.ReencryptAll(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("ReencryptAll = %d, %v; want 2", n, err)
	}
	for _, id := range []string{sealed.ID, legacyID} {
		stored, keyID := storedSecret(t, e, id)
		if keyID == nil || *keyID != rotated.ActiveKeyID() || strings.Contains(stored, legacy[6:]) || strings.Contains(stored, sealed.Secret[6:]) {
			t.Fatalf("row %s after rotation: %q (key %v), want sealed under %s", id, stored, ptr(keyID), rotated.ActiveKeyID())
		}
	}
	if n, err := rotated.ReencryptAll(context.Background()); err != nil || n != 0 {
		t.Fatalf("second ReencryptAll = %d, %v; want nothing left", n, err)
	}

	newOnly := newService(t, e, webhooks.Config{SecretKey: keyNew, Destinations: policy})
	enqueue(t, e, newOnly, owner.P.TenantID, "evt-1")
	dispatch(t, newOnly)
	for _, id := range []string{sealed.ID, legacyID} {
		if d := lastDelivery(t, newOnly, owner, id); d.Status != "delivered" {
			t.Fatalf("%s: %s (%v)", id, d.Status, ptr(d.LastError))
		}
	}
	rec.mu.Lock()
	verified := 0
	for i := range rec.bodies {
		for _, s := range []string{sealed.Secret, legacy} {
			if webhooks.Verify(s, rec.sigs[i], rec.bodies[i], time.Now(), 0) == nil {
				verified++
			}
		}
	}
	rec.mu.Unlock()
	if verified != 2 {
		t.Fatalf("%d of 2 deliveries verify with their endpoint's secret", verified)
	}

	oldOnly := newService(t, e, webhooks.Config{SecretKey: keyOld, Destinations: policy})
	enqueue(t, e, oldOnly, owner.P.TenantID, "evt-2")
	dispatch(t, oldOnly)
	d := lastDelivery(t, oldOnly, owner, sealed.ID)
	if d.Status != "pending" || d.LastError == nil || !strings.Contains(*d.LastError, "not configured") || !strings.Contains(*d.LastError, webhooks.EnvSecretOldKeys) {
		t.Fatalf("old key alone: %s (%v), want a retry naming %s", d.Status, ptr(d.LastError), webhooks.EnvSecretOldKeys)
	}
}

// The delivery and API paths write no secret: a rotated service delivers the legacy and
// old-key rows as they are, and the dispatcher re-seals them under the new key when it
// starts. A secret no key opens is left as is, its delivery fails with the reason and is
// retried, and the process logs it once, however many sweeps find it.
func TestWebhookSecretResealedAtDispatcherStart(t *testing.T) {
	e := apitest.New(t)
	owner, _, _ := e.Tenant("acme")
	rec := newReceiver(t)
	policy := webhooks.Policy{AllowHTTP: true, AllowPrivate: true}
	ctx := context.Background()
	sealed := create(t, newService(t, e, webhooks.Config{SecretKey: keyOld, Destinations: policy}), owner, rec.url("127.0.0.1"))
	insert := func(secret string) string {
		var id string
		err := e.Super.QueryRow(ctx, `INSERT INTO webhook_endpoints (tenant_id, url, secret, created_by)
VALUES ($1, $2, $3, $4) RETURNING id::text`, owner.P.TenantID, rec.url("127.0.0.1"), secret, owner.P.UserID).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	legacyID := insert("whsec_" + strings.Repeat("cd", 32))
	// Sealed under a key no replica has.
	lostID := insert("enc:v1:0badc0de:" + strings.Repeat("A", 60))
	before := map[string]string{}
	for _, id := range []string{sealed.ID, legacyID, lostID} {
		before[id], _ = storedSecret(t, e, id)
	}
	unchanged := func(when string) {
		t.Helper()
		for id, want := range before {
			if got, _ := storedSecret(t, e, id); got != want {
				t.Fatalf("%s: row %s rewritten", when, id)
			}
		}
	}

	logs := &warnings{}
	rotated, err := webhooks.New(e.Pool, webhooks.Config{SecretKey: keyNew, OldSecretKeys: [][]byte{keyOld}, Destinations: policy,
		Schedule: []time.Duration{time.Hour}, Timeout: 5 * time.Second}, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.List(ctx, owner.P); err != nil {
		t.Fatal(err)
	}
	unchanged("after List")
	enqueue(t, e, rotated, owner.P.TenantID, "evt-1")
	dispatch(t, rotated)
	unchanged("after DispatchOnce")
	for _, id := range []string{sealed.ID, legacyID} {
		if d := lastDelivery(t, rotated, owner, id); d.Status != "delivered" {
			t.Fatalf("%s: %s (%v)", id, d.Status, ptr(d.LastError))
		}
	}
	if d := lastDelivery(t, rotated, owner, lostID); d.Status != "pending" || d.Attempts != 1 || d.LastError == nil || !strings.Contains(*d.LastError, "cannot be decrypted") {
		t.Fatalf("unreadable secret: %s after %d attempts (%v), want a retry with the reason", d.Status, d.Attempts, ptr(d.LastError))
	}
	if n := logs.count("webhook secret unreadable, left as is"); n != 0 {
		t.Fatalf("the delivery path logged %d unreadable secrets", n)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rotated.RunDispatcher(runCtx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resealed := 0
		for _, id := range []string{sealed.ID, legacyID} {
			if _, keyID := storedSecret(t, e, id); keyID != nil && *keyID == rotated.ActiveKeyID() {
				resealed++
			}
		}
		if resealed == 2 {
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("%d of 2 rows re-sealed by the dispatcher's start", resealed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, _ := storedSecret(t, e, lostID); got != before[lostID] {
		t.Fatalf("unreadable row rewritten: %q", got)
	}
	// Another sweep finds the unreadable row again, and says nothing more about it.
	if n, err := rotated.ReencryptAll(ctx); err != nil || n != 0 {
		t.Fatalf("second sweep = %d, %v; want nothing re-sealed", n, err)
	}
	if n := logs.count("webhook secret unreadable, left as is"); n != 1 {
		t.Fatalf("unreadable secret logged %d times, want once", n)
	}
}

// warnings records the messages logged at warning level or above.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		w.mu.Lock()
		w.msgs = append(w.msgs, r.Message)
		w.mu.Unlock()
	}
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

func (w *warnings) count(msg string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// A service cannot start without a key for the secrets.
func TestWebhookServiceNeedsKey(t *testing.T) {
	e := apitest.New(t)
	if _, err := webhooks.New(e.Pool, webhooks.Config{}, e.Logger); err == nil || !strings.Contains(err.Error(), webhooks.EnvSecretKey) {
		t.Fatalf("New without a key: %v", err)
	}
}

func ptr[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
