package consumers_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/consumers"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
	"github.com/bitvault/bitvault/service/internal/webhooks"
)

// receiver is a webhook endpoint that is down (503) for its first `down` requests.
type receiver struct {
	mu     sync.Mutex
	down   int
	calls  int
	bodies [][]byte
	sigs   []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls <= r.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	r.bodies = append(r.bodies, b)
	r.sigs = append(r.sigs, req.Header.Get(webhooks.HeaderSignature))
	w.WriteHeader(http.StatusNoContent)
}

// An endpoint down at first gets the event on a retry; the signature verifies; a replay
// with an old timestamp is detected; the delivery state is listed over the API.
func TestWebhooksRetryAndSignature(t *testing.T) {
	e := apitest.New(t)
	owner, member, _ := e.Tenant("acme")
	// The receivers are httptest servers on 127.0.0.1: the test opts in to plain http and
	// private destinations, as an on-prem deployment would (BITVAULT_WEBHOOK_ALLOW_HTTP,
	// BITVAULT_WEBHOOK_ALLOW_PRIVATE); the default policy refuses them.
	hooks, err := webhooks.New(e.Pool, webhooks.Config{
		Schedule: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}, Interval: 20 * time.Millisecond,
		Destinations: webhooks.Policy{AllowHTTP: true, AllowPrivate: true},
		SecretKey:    []byte(strings.Repeat("s", 32)),
	}, e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	hooks.Routes(e.Mux, e.Auth)
	rec := &receiver{down: 2}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)

	var ep webhooks.Endpoint
	e.Want(e.Do("POST", "/v1/webhooks", owner.Token, map[string]any{"url": srv.URL + "/hook", "events": []string{"files.version.created"}}), 201, "").Decode(t, &ep)
	if ep.Secret == "" || ep.ID == "" {
		t.Fatalf("created: %+v", ep)
	}
	// At rest, the secret is sealed: the row holds neither it nor its hex part.
	var stored string
	if err := e.Super.QueryRow(context.Background(), "SELECT secret FROM webhook_endpoints WHERE id = $1::uuid", ep.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored, "enc:v1:") || strings.Contains(stored, strings.TrimPrefix(ep.Secret, "whsec_")) {
		t.Fatalf("stored secret %q: want the sealed form", stored)
	}
	e.Want(e.Do("POST", "/v1/webhooks", member.Token, map[string]any{"url": srv.URL}), 403, "")
	var list struct{ Webhooks []webhooks.Endpoint }
	e.Want(e.Do("GET", "/v1/webhooks", owner.Token, nil), 200, "").Decode(t, &list)
	if len(list.Webhooks) != 1 || list.Webhooks[0].Secret != "" {
		t.Fatalf("list: %+v (the secret is shown once)", list)
	}
	// A second endpoint, always down: its delivery ends dead.
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }))
	t.Cleanup(dead.Close)
	var deadEP webhooks.Endpoint
	e.Want(e.Do("POST", "/v1/webhooks", owner.Token, map[string]any{"url": dead.URL}), 201, "").Decode(t, &deadEP)

	runEvents(t, e, consumers.Options{Webhooks: hooks})
	res := e.Upload(owner, "/hello.txt", []byte("hi"))

	waitUntil(t, "delivered", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return len(rec.bodies) == 1 })
	rec.mu.Lock()
	body, sig, calls := rec.bodies[0], rec.sigs[0], rec.calls
	rec.mu.Unlock()
	if calls != 3 {
		t.Errorf("calls %d, want 3 (two failures, then the retry)", calls)
	}
	if err := webhooks.Verify(ep.Secret, sig, body, time.Now(), 0); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if err := webhooks.Verify("whsec_wrong", sig, body, time.Now(), 0); !errors.Is(err, webhooks.ErrBadSignature) {
		t.Errorf("wrong secret: %v", err)
	}
	if err := webhooks.Verify(ep.Secret, sig, append(body, ' '), time.Now(), 0); !errors.Is(err, webhooks.ErrBadSignature) {
		t.Errorf("tampered body: %v", err)
	}
	if err := webhooks.Verify(ep.Secret, sig, body, time.Now().Add(time.Hour), 5*time.Minute); !errors.Is(err, webhooks.ErrTooOld) {
		t.Errorf("replay an hour later: %v, want ErrTooOld", err)
	}
	var got struct {
		Data struct {
			NodeID string `json:"node_id"`
		} `json:"data"`
	}
	var evt map[string]any
	if err := json.Unmarshal(body, &evt); err != nil || evt["type"] != "files.version.created" || evt["tenant_id"] != owner.P.TenantID {
		t.Fatalf("body %s: %v", body, err)
	}
	_ = json.Unmarshal(body, &got)
	if got.Data.NodeID != res.Node.ID {
		t.Errorf("data.node_id %q, want %q", got.Data.NodeID, res.Node.ID)
	}

	// The receiver has the body before the dispatcher records the attempt: wait for it.
	var ds struct{ Deliveries []webhooks.Delivery }
	waitUntil(t, "delivery recorded", func() bool {
		e.Want(e.Do("GET", "/v1/webhooks/"+ep.ID+"/deliveries", owner.Token, nil), 200, "").Decode(t, &ds)
		return len(ds.Deliveries) == 1 && ds.Deliveries[0].Status != "pending"
	})
	if len(ds.Deliveries) != 1 || ds.Deliveries[0].Status != "delivered" || ds.Deliveries[0].Attempts != 3 {
		t.Fatalf("deliveries: %+v", ds.Deliveries)
	}
	// The always-down endpoint (every event type) dead-letters the event after the first
	// attempt and the two retries of the schedule.
	waitUntil(t, "dead", func() bool {
		var d struct{ Deliveries []webhooks.Delivery }
		e.Want(e.Do("GET", "/v1/webhooks/"+deadEP.ID+"/deliveries", owner.Token, nil), 200, "").Decode(t, &d)
		return len(d.Deliveries) > 0 && d.Deliveries[0].Status == "dead" && d.Deliveries[0].Attempts == 3
	})
	e.Want(e.Do("DELETE", "/v1/webhooks/"+deadEP.ID, owner.Token, nil), 204, "")
	e.Want(e.Do("GET", "/v1/webhooks/"+deadEP.ID+"/deliveries", owner.Token, nil), 404, "not_found")
	e.Want(e.Do("DELETE", "/v1/webhooks/"+deadEP.ID, owner.Token, nil), 404, "not_found")
	e.Want(e.Do("POST", "/v1/webhooks", owner.Token, map[string]any{"url": "ftp://x"}), 400, "invalid_argument")
	// Other tenants see nothing of it.
	other, _, _ := e.Tenant("other")
	e.Want(e.Do("GET", "/v1/webhooks/"+ep.ID+"/deliveries", other.Token, nil), 404, "not_found")
}
