package consumers_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/bus"
	"github.com/bitvault/bitvault/service/internal/consumers"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/outbox"
	"github.com/bitvault/bitvault/service/internal/search"
	"github.com/bitvault/bitvault/service/internal/sharing"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
)

// runEvents runs the relay and the consumers (RunWith, the object-store ones included) on
// an in-memory bus until the test ends.
func runEvents(t *testing.T, e *apitest.Env, o consumers.Options) bus.Bus {
	t.Helper()
	b := bus.NewMem(bus.Options{Backoff: func(int) time.Duration { return 10 * time.Millisecond }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	relay := &outbox.Relay{Pool: e.Pool, Bus: b}
	go func() { _ = relay.Run(ctx); done <- struct{}{} }()
	o.Files = e.Files
	go func() { _ = consumers.RunWith(ctx, b, e.Pool, o); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done; b.Close() })
	return b
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func searchNames(t *testing.T, s *search.Service, p identity.Principal, q string) []string {
	t.Helper()
	page, err := s.Search(context.Background(), p, q, "", 50)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range page.Results {
		names = append(names, h.Name)
	}
	return names
}

func TestIndexerContentSearch(t *testing.T) {
	e := apitest.New(t)
	owner, _, _ := e.Tenant("acme")
	sh, err := sharing.New(e.Pool, e.Identity, e.Store, sharing.Config{Now: e.Clock.Now}, e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	s, err := search.New(e.Pool, sh, e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	runEvents(t, e, consumers.Options{})

	e.Upload(owner, "/notes.txt", []byte("Meeting about the zanzibar migration on Tuesday."))
	e.Upload(owner, "/readme", []byte("plain words here: quokka and friends\n"))              // sniffed as text
	e.Upload(owner, "/image.bin", append([]byte("zanzibar quokka \x00\x01\x02"), 0xff, 0xfe)) // binary
	e.Upload(owner, "/zanzibar.txt", []byte("nothing to see"))
	waitUntil(t, "content indexed", func() bool { return len(searchNames(t, s, owner.P, "quokka")) > 0 })
	waitUntil(t, "all indexed", func() bool {
		var n int
		_ = e.Super.QueryRow(context.Background(), "SELECT count(*) FROM processed_events WHERE consumer = 'indexer'").Scan(&n)
		return n == 4
	})
	if got := searchNames(t, s, owner.P, "quokka"); !slices.Equal(got, []string{"readme"}) {
		t.Errorf("quokka: %v, want [readme] (the binary file is not indexed)", got)
	}
	// The name match ranks above the content match.
	if got := searchNames(t, s, owner.P, "zanzibar"); !slices.Equal(got, []string{"zanzibar.txt", "notes.txt"}) {
		t.Errorf("zanzibar: %v, want [zanzibar.txt notes.txt]", got)
	}
	var binary int
	if err := e.Super.QueryRow(context.Background(), "SELECT count(*) FROM node_content c JOIN nodes n ON n.tenant_id = c.tenant_id AND n.id = c.node_id WHERE n.name = 'image.bin'").Scan(&binary); err != nil || binary != 0 {
		t.Errorf("image.bin indexed: %d %v", binary, err)
	}
	// A new version replaces the content.
	var cur string
	if err := e.Super.QueryRow(context.Background(), "SELECT current_version_id::text FROM nodes WHERE name = 'notes.txt'").Scan(&cur); err != nil {
		t.Fatal(err)
	}
	e.UploadVersion(owner, "/notes.txt", []byte("rescheduled to Wednesday"), cur)
	waitUntil(t, "reindexed", func() bool { return len(searchNames(t, s, owner.P, "wednesday")) == 1 })
	if got := searchNames(t, s, owner.P, "tuesday"); len(got) != 0 {
		t.Errorf("tuesday still found: %v", got)
	}
}

// Redelivering an event changes nothing (ledger), and IsText sorts text from binary.
func TestIndexerIdempotentAndSniffing(t *testing.T) {
	for _, c := range []struct {
		name    string
		content string
		want    bool
	}{
		{"a.txt", "hello", true},
		{"a.md", "# title", true},
		{"noext", "just some words", true},
		{"a.png", "\x89PNG\r\n\x1a\n\x00\x00", false},
		{"a.txt", "bad \xff utf8", false},
		{"a.bin", "text with a \x00 nul", false},
	} {
		if got := consumers.IsText(c.name, []byte(c.content)); got != c.want {
			t.Errorf("IsText(%q, %q) = %v, want %v", c.name, c.content, got, c.want)
		}
	}
	e := apitest.New(t)
	owner, _, _ := e.Tenant("acme")
	res := e.Upload(owner, "/a.txt", []byte("first words"))
	ix := consumers.Indexer{Pool: e.Pool, Store: e.Files.Store()}
	msg := bus.Message{Event: bus.Event{ID: "11111111-1111-4111-8111-111111111111", Tenant: owner.P.TenantID, Type: "files.version.created",
		Payload: []byte(`{"node_id":"` + res.Node.ID + `","version_id":"` + res.Version.ID + `","name":"a.txt","size":11,"blake3":"` + res.Version.BLAKE3 + `"}`)}}
	if err := ix.Handle(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	e.Exec("UPDATE node_content SET content = 'tampered'")
	if err := ix.Handle(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	var content string
	if err := e.Super.QueryRow(context.Background(), "SELECT content FROM node_content").Scan(&content); err != nil || content != "tampered" {
		t.Fatalf("redelivery re-applied: %q %v", content, err)
	}
	if err := ix.Handle(context.Background(), bus.Message{Event: bus.Event{ID: "x", Tenant: owner.P.TenantID, Type: "files.version.created", Payload: []byte(`{}`)}}); !bus.IsTerm(err) {
		t.Fatalf("bad payload: %v, want a permanent failure", err)
	}
}
